/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The member rules (see bbs_policy.h). Counting follows mod_proxy_hcheck:
 * consecutive passes bring an out member back after hcpasses, consecutive
 * fails take an in member out after hcfails; a node that says it is going
 * away leaves at once with BBStatusFastBlock.
 *
 * Flags: HcFl belongs to the member's health check, which for a BBSTATUS
 * member is this module, so it follows the checks whoever set it. Hot
 * standby also is an administrator's tool: the module sets it only where
 * it is not set, clears only what it set and still holds, and does not
 * set again what an administrator took off while the node stays in its
 * standby state. What the
 * module holds is remembered per configuration generation, because a
 * restart rebuilds the worker's flags from the configuration: a flag the
 * module set in an earlier generation is its own only while it is still
 * set and the administrator does not claim it.
 */
#include <string.h>

#include <apr_strings.h>

#include "bbs_keys.h"
#include "bbs_policy.h"
#include "bbs_decide.h"

static void held(bbs_policy_out_t *out, bbs_held_e why, int so_far, int need)
{
    out->held = why;
    out->held_count = so_far;
    out->held_need = need;
}

static void count(bbs_member_state_t *n, const bbs_policy_in_t *in,
                  bbs_policy_out_t *out)
{
    int passes = in->passes > 0 ? in->passes : 1;
    int fails = in->fails > 0 ? in->fails : 1;

    n->checked = 1;
    if (in->verdict == BBS_ROUTE) {
        n->fcount = 0;
        if (n->down || (in->wflags & BBS_WF_ERROR)) {
            if (++n->pcount >= passes) {
                n->pcount = 0;
                n->down = 0;
                out->clear |= in->wflags & BBS_WF_ERROR;
            }
            else {
                held(out, BBS_HELD_PASSES, n->pcount, passes);
            }
        }
        else {
            n->pcount = 0;
        }
        /* only a check that routes knows the state the member is in */
        if (!n->down) {
            n->standby = in->standby != 0;
        }
    }
    else if (in->verdict == BBS_BLOCK && in->fast_block) {
        n->pcount = 0;
        n->fcount = 0;
        n->down = 1;
        out->error_time = 1;
    }
    else {
        n->pcount = 0;
        if (!n->down) {
            out->error_time = 1;
            if (++n->fcount >= fails) {
                n->fcount = 0;
                n->down = 1;
            }
            else {
                held(out, BBS_HELD_FAILS, n->fcount, fails);
            }
        }
    }
    n->failed = in->verdict == BBS_FAIL;
}

void bbs_policy_step(const bbs_member_state_t *prev, const bbs_policy_in_t *in,
                     bbs_policy_out_t *out)
{
    bbs_member_state_t n = *prev;
    unsigned owned;
    int want_hcfl, want_stby;

    memset(out, 0, sizeof(*out));
    if (prev->gen > in->gen) {
        /* a checker of a newer generation holds the member: one of an
         * older generation still finishing a probe leaves it alone */
        out->next = n;
        out->decision = bbs_policy_decision(&n, in->panic);
        return;
    }
    /* a flag someone else cleared (a restart, an administrator) is no
     * longer the module's, nor one the administrator claims */
    owned = prev->owned & in->wflags & ~in->admin
            & (BBS_WF_STBY | BBS_WF_HCFL);
    if (prev->gen != in->gen) {
        /* a restart: the configuration and the records decide again */
        n.yielded = 0;
    }
    else if (prev->owned & ~in->wflags & BBS_WF_STBY) {
        /* within a generation only an administrator clears Stby */
        n.yielded = 1;
    }
    n.gen = in->gen;
    if (!in->ours) {
        /* switched to another hcmethod: what the module set goes, the
         * other method decides from here */
        out->clear = owned;
        n.owned = 0;
        n.yielded = 0;
        out->next = n;
        out->decision = BBS_DEC_PENDING;
        return;
    }
    if (in->verdict != BBS_NO_CHECK) {
        count(&n, in, out);
        if (!prev->checked) {
            /* an administrator's Off of the Stby that kept an unchecked
             * member waiting ends with that wait: the first check says
             * what the node is, and a standby state gets its Stby */
            n.yielded = 0;
        }
    }
    want_hcfl = n.checked && n.down && !in->panic;
    /* a member nobody has checked yet is used only while no checked
     * member is: a standby until its first check says where it belongs */
    want_stby = !n.checked || n.standby;

    if (want_hcfl) {
        out->set |= ~in->wflags & BBS_WF_HCFL;
        owned |= BBS_WF_HCFL;
    }
    else {
        out->clear |= in->wflags & BBS_WF_HCFL;
        owned &= ~(unsigned)BBS_WF_HCFL;
    }
    if (!want_stby) {
        n.yielded = 0;
    }
    /* a Stby the administrator claims is theirs to set as to clear */
    if (want_stby && !(in->wflags & BBS_WF_STBY) && !n.yielded
        && !(in->admin & BBS_WF_STBY)) {
        out->set |= BBS_WF_STBY;
        owned |= BBS_WF_STBY;
    }
    else if (!want_stby && (owned & BBS_WF_STBY)) {
        out->clear |= BBS_WF_STBY;
        owned &= ~(unsigned)BBS_WF_STBY;
    }
    n.owned = owned;
    out->next = n;
    out->decision = bbs_policy_decision(&n, in->panic);
}

void bbs_policy_reason(char *buf, apr_size_t len, const bbs_policy_out_t *out,
                       const char *verdict_reason)
{
    switch (out->held) {
    case BBS_HELD_PASSES:
        apr_snprintf(buf, len, "out until hcpasses=%d checks in a row "
                     "pass, %d so far; last check: %s", out->held_need,
                     out->held_count, verdict_reason);
        break;
    case BBS_HELD_FAILS:
        apr_snprintf(buf, len, "in until hcfails=%d checks in a row "
                     "fail, %d so far; last check: %s", out->held_need,
                     out->held_count, verdict_reason);
        break;
    default:
        apr_cpystrn(buf, verdict_reason, len);
    }
}

bbs_decision_e bbs_policy_decision(const bbs_member_state_t *m, int panic)
{
    if (!m->checked) {
        return BBS_DEC_PENDING;
    }
    if (m->down) {
        return panic ? BBS_DEC_PANIC : BBS_DEC_BLOCK;
    }
    return m->standby ? BBS_DEC_STANDBY : BBS_DEC_ROUTE;
}

const char *bbs_decision_name(bbs_decision_e d)
{
    switch (d) {
    case BBS_DEC_ROUTE:
        return BBS_DECISION_ROUTE;
    case BBS_DEC_BLOCK:
        return BBS_DECISION_BLOCK;
    case BBS_DEC_STANDBY:
        return BBS_DECISION_STANDBY;
    case BBS_DEC_PANIC:
        return BBS_DECISION_PANIC;
    case BBS_DEC_PENDING:
        break;
    }
    return BBS_DECISION_PENDING;
}

int bbs_policy_panic(const bbs_panic_member_t *members, int n, int panic_on)
{
    int i, ours = 0, failed = 0, usable_other = 0;

    for (i = 0; i < n; ++i) {
        const bbs_panic_member_t *m = &members[i];
        if (m->excluded) {
            continue;
        }
        if (!m->ours) {
            usable_other |= m->usable != 0;
            continue;
        }
        ours++;
        if (m->down && m->failed) {
            failed++;
        }
    }
    return panic_on && ours > 0 && failed == ours && !usable_other;
}
