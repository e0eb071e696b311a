/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* The member rules applied to workers and slots (mod_bbstatus_flags.c). */
#ifndef MOD_BBSTATUS_FLAGS_H
#define MOD_BBSTATUS_FLAGS_H

#include "bbs_policy.h"
#include "mod_bbstatus_private.h"
#include "mod_bbstatus_config.h"
#include "mod_bbstatus_shm.h"

/* Notes the flags the configuration gives members; runs before
 * mod_proxy_balancer's post_config. */
int bbs_flags_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                     server_rec *s);
/* A restart rebuilt every member's flags from the configuration: gives
 * them what the members' records say, in the parent, before the new
 * generation's children serve a request or elect a checker. */
void bbs_flags_post_config(server_rec *s);
/* Runs the member rules (bbs_policy.c) after a check r, or with r NULL to
 * re-apply what the member's state says, and applies their answer to the
 * worker and the slot. set may be NULL for a member that is no longer
 * BBSTATUS. out gets the rules' answer, its decision the one the record
 * keeps and every output shows. */
void bbs_flags_step(proxy_worker *w, bbs_slot_t *slot,
                    const bbs_settings_t *set, int checked,
                    const bbs_result_t *r, apr_time_t now,
                    bbs_policy_out_t *out);
/* Whether this process met a member that a newer generation holds: it
 * must stop checking, so the lease goes to a new child. */
int bbs_flags_outdated(void);

#endif /* MOD_BBSTATUS_FLAGS_H */
