/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* Writing members' records and logging changes of decision
 * (mod_bbstatus_record.c). */
#ifndef MOD_BBSTATUS_RECORD_H
#define MOD_BBSTATUS_RECORD_H

#include "bbs_policy.h"
#include "mod_bbstatus_private.h"
#include "mod_bbstatus_shm.h"
#include "mod_bbstatus_probe.h"

/* The member a record is of: where it is written and what the log names. */
typedef struct {
    server_rec *s;
    const proxy_balancer *b;
    const proxy_worker *w;
    bbs_slot_t *slot;
    const char *probe_url;
} bbs_record_of_t;

/* Adds check r to rec with the decision the member rules made of it
 * (out) and the reason that explains it, notes a change of decision and
 * writes rec. */
void bbs_record_check(bbs_record_t *rec, const bbs_record_of_t *of,
                      const bbs_probe_result_t *pr, const bbs_result_t *r,
                      const bbs_policy_out_t *out, apr_time_t now);
/* Records and logs a change to decision (bbs_decision_e), 1 if there was
 * one; the caller writes the record. */
int bbs_record_note(bbs_record_t *rec, const bbs_record_of_t *of,
                    bbs_decision_e decision,
                    apr_time_t now);

#endif /* MOD_BBSTATUS_RECORD_H */
