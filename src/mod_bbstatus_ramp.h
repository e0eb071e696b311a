/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* BBStatusWarmup, the checker's side: starting, moving and ending a
 * member's ramp (mod_bbstatus_ramp.c). The request path's side is
 * mod_bbstatus_warmup.c. */
#ifndef MOD_BBSTATUS_RAMP_H
#define MOD_BBSTATUS_RAMP_H

#include "mod_bbstatus_private.h"
#include "mod_bbstatus_config.h"
#include "mod_bbstatus_shm.h"

/* A check changed w's decision from `before` to `after`
 * (bbs_decision_e): a member back in rotation after being out starts its
 * ramp, one that leaves ends it. */
void bbs_ramp_note(server_rec *s, const proxy_balancer *b,
                   const proxy_worker *w, bbs_slot_t *slot,
                   const bbs_settings_t *set, int before, int after,
                   apr_time_t now);
/* Ends a ramp at once (BBStatusWarmup turned off by a restart). */
void bbs_ramp_forget(bbs_slot_t *slot);
/* Moves the ramps of b's members dt further, from their answer times
 * against their peers'. */
void bbs_ramp_tick(server_rec *s, proxy_balancer *b, const bbs_settings_t *set,
                   apr_time_t now, apr_interval_time_t dt);

#endif /* MOD_BBSTATUS_RAMP_H */
