/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * BBStatusWarmup, run by the checker: a member whose decision turns route
 * after block or standby starts a ramp in its slot; every tick the ramp
 * moves by the rules of bbs_warmup.c, from the answer times the request
 * path folds into the slots (mod_bbstatus_warmup.c). The slot holds the
 * ramp, so a checker taking over, and a graceful restart (the records
 * carry it), go on where it was.
 */
#include <string.h>

#include "apr_strings.h"

#include "bbs_policy.h"
#include "bbs_warmup.h"
#include "mod_bbstatus_method.h"
#include "mod_bbstatus_ramp.h"

/* members compared at most; a balancer has a handful */
#define PEERS_MAX 64

void bbs_ramp_forget(bbs_slot_t *slot)
{
    bbs_shm_warm_t warm;

    if (bbs_shm_warm_share(slot) < BBS_SHARE_FULL) {
        memset(&warm, 0, sizeof(warm));
        bbs_shm_set_warm(slot, &warm);
    }
}

void bbs_ramp_note(server_rec *s, const proxy_balancer *b,
                   const proxy_worker *w, bbs_slot_t *slot,
                   const bbs_settings_t *set, int before, int after,
                   apr_time_t now)
{
    bbs_shm_warm_t warm;

    if (after == BBS_DEC_ROUTE && set->warmup.duration
        && (before == BBS_DEC_BLOCK || before == BBS_DEC_STANDBY)) {
        warm.share = set->warmup.floor ? set->warmup.floor : 1;
        warm.progress_ms = 0;
        warm.start_s = (apr_uint32_t)apr_time_sec(now);
        warm.duration_ms = (apr_uint32_t)apr_time_as_msec(
            set->warmup.duration);
        warm.held = 0;
        bbs_shm_forget_latency(slot);
        bbs_shm_set_warm(slot, &warm);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, BBSLOGNO(0100)
                     "%s member %s: back in rotation, warming up from "
                     "%u%% of its share over %" APR_TIME_T_FMT " s "
                     "(BBStatusWarmup)", b->s->name, bbs_wname(w),
                     warm.share / 10, apr_time_sec(set->warmup.duration));
    }
    else if (after != BBS_DEC_ROUTE) {
        bbs_ramp_forget(slot);
    }
}

static void tick_member(server_rec *s, proxy_balancer *b, proxy_worker *w,
                        bbs_slot_t *slot, const bbs_settings_t *set,
                        apr_time_t now, apr_interval_time_t dt,
                        apr_uint32_t peers_us)
{
    bbs_shm_warm_t warm;
    bbs_warmup_in_t in;
    bbs_warmup_out_t out;

    bbs_shm_warm(slot, &warm);
    if (!warm.share) {
        return;
    }
    in.progress = apr_time_from_msec(warm.progress_ms);
    in.elapsed = now - apr_time_from_sec(warm.start_s);
    in.dt = dt;
    in.member_us = bbs_shm_latency(slot);
    in.peers_us = peers_us;
    bbs_warmup_step(&set->warmup, &in, &out);
    if (out.state == BBS_WARM_DONE || out.state == BBS_WARM_GAVE_UP) {
        bbs_ramp_forget(slot);
        if (out.state == BBS_WARM_DONE) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, BBSLOGNO(0101)
                         "%s member %s: warmed up, full share",
                         b->s->name, bbs_wname(w));
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, BBSLOGNO(0102)
                         "%s member %s: still answers in %u ms where its "
                         "peers take %u ms, %d warm-up periods after it "
                         "came back; it gets its full share now",
                         b->s->name, bbs_wname(w), in.member_us / 1000,
                         in.peers_us / 1000, BBS_WARM_GIVE_UP);
        }
        return;
    }
    warm.share = out.share ? out.share : 1;
    warm.progress_ms = (apr_uint32_t)apr_time_as_msec(out.progress);
    warm.duration_ms = (apr_uint32_t)apr_time_as_msec(set->warmup.duration);
    warm.held = out.state == BBS_WARM_HELD;
    bbs_shm_set_warm(slot, &warm);
}

/* A member's weight as the balancer counts it: lbfactor, at least 1. */
static apr_uint64_t weight_of(const proxy_worker *w)
{
    return (apr_uint64_t)(w->s->lbfactor > 0 ? w->s->lbfactor : 1);
}

typedef struct {
    apr_uint32_t routed;    /* requests its members served since last tick */
    apr_uint64_t lbfactors; /* of its usable members */
    apr_uint32_t peers_us;  /* answer time of the members in rotation and
                               not warming: what a warming one is held to */
} balancer_pace_t;

/* One pass over b's members for what every ramp of the tick compares
 * with. */
static void pace_of(proxy_balancer *b, balancer_pace_t *pace)
{
    apr_uint32_t us[PEERS_MAX];
    int i, n = 0;

    pace->routed = 0;
    pace->lbfactors = 0;
    for (i = 0; i < b->workers->nelts; ++i) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        int usable = PROXY_WORKER_IS_USABLE(w);
        bbs_slot_t *slot;

        if (usable) {
            pace->lbfactors += weight_of(w);
        }
        if (!bbs_method_is(w) || !(slot = bbs_shm_member(b, w, 0))) {
            continue;
        }
        pace->routed += bbs_shm_routed_since(slot);
        if (usable && !PROXY_WORKER_IS_STANDBY(w) && n < PEERS_MAX
            && bbs_shm_warm_share(slot) >= BBS_SHARE_FULL) {
            us[n++] = bbs_shm_latency(slot);
        }
    }
    pace->peers_us = bbs_warmup_median(us, n);
}

void bbs_ramp_tick(server_rec *s, proxy_balancer *b, const bbs_settings_t *set,
                   apr_time_t now, apr_interval_time_t dt)
{
    balancer_pace_t pace;
    int i;

    pace_of(b, &pace);
    for (i = 0; i < b->workers->nelts; ++i) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        bbs_slot_t *slot;

        if (bbs_method_is(w) && (slot = bbs_shm_member(b, w, 0))) {
            tick_member(s, b, w, slot, set, now, dt, pace.peers_us);
            if (bbs_shm_warm_share(slot) < BBS_SHARE_FULL) {
                /* its share of what the balancer served last tick, and
                 * one more so a quiet balancer still gives it requests */
                apr_uint64_t fair = pace.lbfactors
                                        ? (apr_uint64_t)pace.routed
                                              * weight_of(w) / pace.lbfactors
                                        : 0;
                bbs_shm_set_warm_budget(
                    slot, (apr_uint32_t)(fair * bbs_shm_warm_share(slot)
                                         / BBS_SHARE_FULL)
                              + 1);
            }
        }
    }
}
