/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* The checker's lease in shared memory (mod_bbstatus_lease.c). */
#ifndef MOD_BBSTATUS_LEASE_H
#define MOD_BBSTATUS_LEASE_H

#include "mod_bbstatus_private.h"

/* Makes the lease's segment once, in the parent, and counts the
 * generation. */
int bbs_lease_post_config(server_rec *s);
/* Takes or renews the checker's lease for process `me`; 1 if it holds it.
 * A lease not renewed for ttl is free to take. */
int bbs_lease_take(apr_uint32_t me, apr_time_t now, apr_interval_time_t ttl);
void bbs_lease_release(apr_uint32_t me);

#endif /* MOD_BBSTATUS_LEASE_H */
