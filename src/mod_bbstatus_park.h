/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* BBSTATUS members parked away from mod_proxy_hcheck
 * (mod_bbstatus_park.c). */
#ifndef MOD_BBSTATUS_PARK_H
#define MOD_BBSTATUS_PARK_H

#include "mod_bbstatus_private.h"
#include "mod_bbstatus_shm.h"

/* Parks w if it is BBSTATUS, or hands it back to mod_proxy_hcheck if it
 * was parked here (slot may be NULL). */
void bbs_park(proxy_worker *w, bbs_slot_t *slot, apr_time_t now);
void bbs_park_all(server_rec *s);
/* Only re-parks BBSTATUS members: cheap enough for every child's tick. */
void bbs_park_keep(server_rec *s);
void bbs_park_child_init(apr_pool_t *p, server_rec *s);

#endif /* MOD_BBSTATUS_PARK_H */
