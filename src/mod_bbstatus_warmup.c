/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Where a request may go while members warm up or wait for their first
 * check.
 *
 * First checks: a BBSTATUS member nobody has checked yet is a hot standby
 * (the member rules set Stby on it), so it gets requests only while no
 * checked member is usable. Right after a start nothing is checked yet:
 * a request then waits, a bounded time, until the checker's first checks
 * (made at once, in parallel) have found a member that routes, or checked
 * them all, rather than go to a node that may be STARTING or STOPPING.
 * Once every balancer of this process has a checked member, the wait
 * costs one atomic read.
 *
 * BBStatusWarmup: a member whose ramp holds a share below its full one
 * (mod_bbstatus_ramp.c) is offered to the balancer's lbmethod for that
 * share of the requests without a route, and given at most as many as its
 * share of the balancer's requests in the last tick (the budget the
 * checker sets): for the others the balancer
 * chooses among a request-private copy of itself without that member,
 * as the sticky unit does. The lbmethod, lbfactors and the shared
 * members stay the balancer's own; a request whose route names a member
 * goes where the route says at once.
 */
#include <string.h>

#include "apr_atomic.h"
#include "apr_strings.h"
#include "http_main.h"

#include "bbs_warmup.h"
#include "mod_bbstatus_config.h"
#include "mod_bbstatus_method.h"
#include "mod_bbstatus_shm.h"
#include "mod_bbstatus_sticky.h"
#include "mod_bbstatus_warmup.h"

#define BALANCER_SCHEME "balancer://"
#define NOTE_INNER "bbstatus-warmup"
/* how long a request waits for the first checks after a start, and how
 * often it looks */
#define FIRST_CHECK_WAIT apr_time_from_sec(1)
#define FIRST_CHECK_POLL apr_time_from_msec(5)

/* Set once every balancer this process serves has a checked member (or
 * none checked by the module): from then on no request waits. Per
 * process, and so per generation; it only ever goes from 0 to 1. */
static volatile apr_uint32_t all_checked;

/* 1 when a request to b need not wait: a checked BBSTATUS member routes
 * (the balancer prefers it to the unchecked ones, which are standby), or
 * every one is checked, or b has none. A member checked first may be one
 * in a standby state, beside an unchecked one that would route. */
static int balancer_checked(proxy_balancer *b)
{
    int i, unchecked = 0;

    for (i = 0; i < b->workers->nelts; ++i) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        bbs_slot_t *slot;
        apr_uint32_t f;

        if (!bbs_method_is(w) || PROXY_WORKER_IS(w, PROXY_WORKER_DISABLED
                                                        | PROXY_WORKER_STOPPED)) {
            continue;
        }
        /* a member without a slot is never checked: nothing to wait for */
        if (!(slot = bbs_shm_member(b, w, 0))) {
            continue;
        }
        f = bbs_shm_flags(slot);
        if (!(f & BBS_SLOT_CHECKED)) {
            unchecked = 1;
        }
        else if (!(f & (BBS_SLOT_DOWN | BBS_SLOT_STANDBY_STATE))) {
            return 1;
        }
    }
    return !unchecked;
}

static void all_checked_of(server_rec *s, proxy_server_conf *conf,
                           proxy_balancer *b, void *baton)
{
    (void)s;
    (void)conf;
    if (!balancer_checked(b)) {
        *(int *)baton = 0;
    }
}

static void wait_for_first_checks(request_rec *r, proxy_balancer *b)
{
    apr_time_t until;
    int done = 1;

    if (apr_atomic_read32(&all_checked)) {
        return;
    }
    bbs_each_balancer(ap_server_conf, all_checked_of, &done);
    if (done) {
        apr_atomic_set32(&all_checked, 1);
        return;
    }
    until = apr_time_now() + FIRST_CHECK_WAIT;
    while (!(done = balancer_checked(b)) && apr_time_now() < until) {
        apr_sleep(FIRST_CHECK_POLL);
    }
    if (!done) {
        /* no checker, or probes that hang: this process waits no more,
         * requests go where the flags say */
        apr_atomic_set32(&all_checked, 1);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, BBSLOGNO(0103)
                  "%s: the request waited for the first checks: %s",
                  b->s->name, done ? "done" : "not yet, routed as the "
                  "flags are; no request of this process waits again");
}

/* A uniform-enough draw in 0..BBS_SHARE_FULL-1 for member k of request r:
 * splitmix64 of what tells requests and members apart. */
static unsigned draw(const request_rec *r, int k)
{
    apr_uint64_t x = (apr_uint64_t)r->request_time
                     ^ ((apr_uint64_t)(apr_uintptr_t)r << 16)
                     ^ ((apr_uint64_t)k * 0x9E3779B97F4A7C15ULL);

    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return (unsigned)(x % BBS_SHARE_FULL);
}

/* The members this request may be given: b's, less the warming ones its
 * draws, or their budgets, leave out. NULL when no member is warming, or
 * when every usable member would be left out (the balancer then decides
 * as if there were no ramp). *warming: some member is. */
static apr_array_header_t *admitted(request_rec *r, proxy_balancer *b,
                                    int *warming)
{
    apr_array_header_t *in;
    int i, usable_in = 0;

    *warming = 0;
    in = apr_array_make(r->pool, b->workers->nelts, sizeof(proxy_worker *));
    for (i = 0; i < b->workers->nelts; ++i) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        bbs_slot_t *slot = bbs_method_is(w) ? bbs_shm_member(b, w, 0) : NULL;
        unsigned share = slot ? bbs_shm_warm_share(slot) : BBS_SHARE_FULL;

        if (share < BBS_SHARE_FULL) {
            *warming = 1;
            if (!bbs_warmup_admits(share, draw(r, i))
                || !bbs_shm_warm_budget(slot)) {
                continue;
            }
        }
        usable_in |= PROXY_WORKER_IS_USABLE(w);
        APR_ARRAY_PUSH(in, proxy_worker *) = w;
    }
    return *warming && usable_in ? in : NULL;
}

int bbs_warmup_pre_request(proxy_worker **worker, proxy_balancer **balancer,
                           request_rec *r, proxy_server_conf *conf,
                           char **url)
{
    const bbs_dir_conf_t *c;
    proxy_balancer *b = *balancer, *copy;
    proxy_balancer_shared *s;
    apr_array_header_t *in;
    bbs_slot_t *slot;
    const char *sticky;
    int rv, warming, warmup_on;

    c = ap_get_module_config(r->per_dir_config, &bbstatus_module);
    warmup_on = bbs_warmup_of(c) != 0;
    if (!b) {
        /* every proxied request comes here: without a ramp to apply and
         * once the first checks are made, before any lookup */
        if ((!warmup_on && apr_atomic_read32(&all_checked))
            || ap_cstr_casecmpn(*url, BALANCER_SCHEME,
                                sizeof(BALANCER_SCHEME) - 1)
            || apr_table_get(r->notes, NOTE_INNER)
            || !(b = ap_proxy_get_balancer(r->pool, conf, *url, 1))) {
            return DECLINED;
        }
        /* only a request's first attempt waits: a failover has a
         * balancer already */
        wait_for_first_checks(r, b);
    }
    if (!warmup_on || apr_table_get(r->notes, NOTE_INNER)
        || bbs_sticky_route(r, b, *url, &sticky)
        || !(in = admitted(r, b, &warming))) {
        return DECLINED;
    }
    copy = b;
    if (in->nelts < b->workers->nelts) {
        copy = apr_pmemdup(r->pool, b, sizeof(*b));
        s = apr_pmemdup(r->pool, b->s, sizeof(*b->s));
        /* the member list was synced by the balancer's requests; a sync
         * on the copy would attach members to it */
        s->wupdated = copy->wupdated;
        copy->s = s;
        copy->workers = in;
    }
    apr_table_setn(r->notes, NOTE_INNER, "1");
    rv = ap_proxy_pre_request(worker, &copy, r, conf, url);
    apr_table_unset(r->notes, NOTE_INNER);
    *balancer = b;
    /* a warming member's budget goes by the requests it is given: an
     * lbmethod that always takes the least loaded member (bytraffic)
     * would give it every request it is offered */
    if (rv == OK && *worker && bbs_method_is(*worker)
        && (slot = bbs_shm_member(b, *worker, 0))
        && bbs_shm_warm_share(slot) < BBS_SHARE_FULL) {
        bbs_shm_take_warm_budget(slot);
    }
    return rv;
}

void bbs_warmup_note(request_rec *r, proxy_balancer *b, proxy_worker *w)
{
    const bbs_dir_conf_t *c = ap_get_module_config(r->per_dir_config,
                                                   &bbstatus_module);
    apr_interval_time_t took;
    bbs_slot_t *slot;

    if (!bbs_warmup_of(c) || !bbs_method_is(w)
        || !(slot = bbs_shm_member(b, w, 0))) {
        return;
    }
    bbs_shm_count_routed(slot);
    if (r->status >= 500) {
        return; /* an error page's time says little of the node's pace */
    }
    took = apr_time_now() - r->request_time;
    if (took < 0) {
        took = 0;
    }
    bbs_shm_note_latency(slot, took > (apr_interval_time_t)0x7FFFFFFF
                                   ? 0x7FFFFFFFu
                                   : (apr_uint32_t)took);
}
