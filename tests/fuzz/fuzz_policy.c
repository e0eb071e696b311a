/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * libFuzzer target for the member rules. The input is a member's life,
 * four bytes per event: a check with its verdict, a re-application, an
 * administrator's balancer-manager edit, mod_proxy putting the member in
 * error, a restart, a switch of hcmethod, panic coming and going, changed
 * hcpasses/hcfails. The flags are applied as the checker applies them,
 * and after every event the rules must hold: an administrator's Stby is
 * never cleared, nothing is set twice or cleared when unset, the counts
 * stay below their limits, and the flags say what the decision says.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bbs_decide.h"
#include "bbs_policy.h"

typedef struct {
    bbs_member_state_t st;
    unsigned wflags;    /* the worker's flags */
    int admin_stby;     /* the administrator set +H in balancer-manager */
    int admin_off;      /* ... or took the module's Stby off, in this
                           generation and standby state */
    int config_stby;    /* status=+H in the configuration */
    int ours, panic, passes, fails, fast_block;
    apr_uint32_t gen;
} life_t;

static void check(const life_t *l, const bbs_member_state_t *prev,
                  const bbs_policy_in_t *in, const bbs_policy_out_t *out)
{
    unsigned now = (in->wflags | out->set) & ~out->clear;

    if ((out->set & out->clear) || (out->set & in->wflags)
        || (out->clear & ~in->wflags)) {
        abort(); /* each change must be a change */
    }
    if ((out->clear & BBS_WF_STBY)
        && (l->admin_stby || l->config_stby
            || !(prev->owned & BBS_WF_STBY))) {
        abort(); /* took a Stby that is not the module's */
    }
    if (out->next.gen != in->gen) {
        abort();
    }
    if (!in->ours) {
        /* another method decides: the module only gives back */
        if (out->set || out->next.owned || out->decision != BBS_DEC_PENDING) {
            abort();
        }
        return;
    }
    if (out->decision != bbs_policy_decision(&out->next, in->panic)) {
        abort();
    }
    /* after a check; hcpasses or hcfails lowered in between apply from the
     * next one, as with mod_proxy_hcheck */
    if (in->verdict != BBS_NO_CHECK
        && (out->next.pcount < 0 || out->next.fcount < 0
        || out->next.pcount >= (in->passes > 0 ? in->passes : 1)
        || out->next.fcount >= (in->fails > 0 ? in->fails : 1))) {
        abort();
    }
    if (!!(now & BBS_WF_HCFL)
        != (out->next.checked && out->next.down && !in->panic)) {
        abort(); /* HcFl must say what the checks say */
    }
    if ((out->set & BBS_WF_STBY)
        && (l->admin_off || (in->admin & BBS_WF_STBY))) {
        abort(); /* set again what the administrator took off */
    }
    if (out->next.checked && out->next.standby && !(now & BBS_WF_STBY)
        && !l->admin_off && !(in->admin & BBS_WF_STBY)) {
        abort(); /* a standby member must not take traffic */
    }
    if ((out->next.owned & ~now) != 0) {
        abort(); /* holds a flag that is not set */
    }
}

static void step(life_t *l, int verdict, int standby, unsigned claim)
{
    bbs_policy_in_t in;
    bbs_policy_out_t out;
    bbs_member_state_t prev = l->st;

    memset(&in, 0, sizeof(in));
    in.verdict = verdict;
    in.standby = standby;
    in.passes = l->passes;
    in.fails = l->fails;
    in.fast_block = l->fast_block;
    in.panic = l->panic;
    in.ours = l->ours;
    in.wflags = l->wflags;
    in.admin = claim | (l->config_stby ? BBS_WF_STBY : 0);
    in.gen = l->gen;
    bbs_policy_step(&prev, &in, &out);
    check(l, &prev, &in, &out);
    l->wflags = (l->wflags | out.set) & ~out.clear;
    l->st = out.next;
    if (!l->st.standby || !l->ours) {
        l->admin_off = 0;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    life_t l;
    size_t i;

    memset(&l, 0, sizeof(l));
    l.ours = 1;
    l.passes = 1;
    l.fails = 1;
    l.fast_block = 1;
    l.gen = 1;
    for (i = 0; i + 4 <= size; i += 4) {
        const uint8_t *e = data + i;
        int arg = e[1];

        switch (e[0] % 10) {
        case 0: /* a check */
        case 1:
        case 2:
            step(&l, arg % 3, (arg >> 2) & 1 && arg % 3 == BBS_ROUTE, 0);
            break;
        case 3: /* re-applied: a panic judgement, a new tick */
            step(&l, BBS_NO_CHECK, 0, 0);
            break;
        case 4: /* balancer-manager: +H or -H, HcFl on or off */
            if (arg & 1) {
                int on = (arg >> 1) & 1;
                l.wflags = on ? (l.wflags | BBS_WF_STBY)
                              : (l.wflags & ~(unsigned)BBS_WF_STBY);
                /* lasts, +H or not, while the standby state does */
                l.admin_off = l.admin_off
                              || (!on && (l.st.owned & BBS_WF_STBY)
                                  && l.st.gen == l.gen);
                l.admin_stby = on;
                step(&l, BBS_NO_CHECK, 0, on ? BBS_WF_STBY : 0);
            }
            else {
                l.wflags = ((arg >> 1) & 1)
                               ? (l.wflags | BBS_WF_HCFL)
                               : (l.wflags & ~(unsigned)BBS_WF_HCFL);
            }
            break;
        case 5: /* mod_proxy put the member in error */
            l.wflags |= BBS_WF_ERROR;
            break;
        case 6: /* a restart: the flags from the configuration */
            l.config_stby = arg & 1;
            l.admin_stby = 0;
            l.admin_off = 0;
            l.wflags = l.config_stby ? BBS_WF_STBY : 0;
            l.gen++;
            step(&l, BBS_NO_CHECK, 0, 0);
            break;
        case 7: /* balancer-manager: another hcmethod, or back */
            l.ours = arg & 1;
            step(&l, BBS_NO_CHECK, 0, 0);
            break;
        case 8: /* panic judged */
            l.panic = arg & 1;
            step(&l, BBS_NO_CHECK, 0, 0);
            break;
        case 9: /* hcpasses, hcfails, BBStatusFastBlock edited */
            l.passes = (int)(int8_t)e[2];
            l.fails = (int)(int8_t)e[3];
            l.fast_block = arg & 1;
            break;
        }
    }
    return 0;
}
