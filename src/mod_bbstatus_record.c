/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * A member's record after each check, and the log line and history entry
 * of every change of its decision. The record is owned by whoever owns
 * the member: its check, or the checker's thread between checks.
 */
#include "apr_strings.h"

#include "bbs_policy.h"
#include "mod_bbstatus_record.h"

int bbs_record_note(bbs_record_t *rec, const bbs_record_of_t *of,
                    bbs_decision_e decision, apr_time_t now)
{
    char code[16];
    bbs_decision_e before = rec->decision, after;

    after = rec->decision = decision;
    if (after != before) {
        bbs_change_t *c = &rec->history[rec->history_len % BBS_HISTORY];

        c->at = now;
        c->from = before;
        c->to = after;
        apr_cpystrn(c->state, rec->state, sizeof(c->state));
        apr_cpystrn(c->reason, rec->reason, sizeof(c->reason));
        rec->history_len++;
        rec->changed_at = now;
        apr_snprintf(code, sizeof(code), "%d", rec->http_status);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, of->s, BBSLOGNO(0010)
                     "%s member %s: %s -> %s (state %s, %s): %s",
                     of->b->s->name, bbs_wname(of->w),
                     bbs_decision_name(before), bbs_decision_name(after),
                     rec->has_state ? rec->state : "none",
                     rec->http_status ? code
                                      : bbs_transport_name(
                                            (bbs_transport_e)rec->transport),
                     rec->reason);
        return 1;
    }
    return 0;
}

void bbs_record_check(bbs_record_t *rec, const bbs_record_of_t *of,
                      const bbs_probe_result_t *pr, const bbs_result_t *r,
                      const bbs_policy_out_t *out, apr_time_t now)
{

    if (rec->checked_at) {
        rec->last_interval = now - rec->checked_at;
    }
    rec->checked_at = now;
    rec->latency = pr->latency;
    rec->checks++;
    if (r->verdict == BBS_FAIL) {
        rec->failures++;
    }
    rec->verdict = r->verdict;
    rec->has_state = r->has_state;
    apr_cpystrn(rec->state, r->has_state ? r->state : "", sizeof(rec->state));
    bbs_policy_reason(rec->reason, sizeof(rec->reason), out, r->reason);
    rec->transport = pr->answer.transport;
    rec->http_status = pr->answer.transport == BBS_TX_OK
                           ? pr->answer.http_status
                           : 0;
    apr_cpystrn(rec->probe_url, of->probe_url, sizeof(rec->probe_url));
    bbs_record_note(rec, of, out->decision, now);
    bbs_shm_write(of->slot, rec);
}
