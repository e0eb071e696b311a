/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Sticky sessions and the module's standby.
 *
 * mod_proxy_balancer looks a session's route up before its lbmethod runs,
 * and that lookup takes a usable hot standby member when the route names
 * it. For members the module holds in standby (a STARTING or MAINTENANCE
 * node) that keeps every user of a restarted node on its progress or
 * maintenance page although a RUNNING node is there.
 *
 * A proxy pre_request hook ordered before mod_proxy_balancer's sees such a
 * request first. While a better member is usable it runs the balancer's
 * own pre_request on a copy of the balancer, private to this request, whose
 * copy of the shared settings has no stickysession: the route lookup finds
 * nothing and the lbmethod chooses among the members as for a request
 * without a route. Nothing of the request changes (the backend gets the
 * client's cookie, path and query as they came) and nothing that other
 * requests see changes: the members, their shared state and the balancer's
 * lock are the real ones, only the settings record is a request-pool copy.
 */
#include <string.h>

#include "apr_strings.h"

#include "bbs_route.h"
#include "mod_bbstatus_shm.h"
#include "mod_bbstatus_sticky.h"

#define BALANCER_SCHEME "balancer://"

int bbs_better_member_usable(proxy_balancer *b, const proxy_worker *me)
{
    int i;

    /* what the stock lbmethods do: lbsets in order, a draining member is
     * never chosen, hot standby members of an lbset only when no other
     * member of it is usable */
    for (i = 0; i < b->workers->nelts; ++i) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        if (w == me || !PROXY_WORKER_IS_USABLE(w)
            || PROXY_WORKER_IS_DRAINING(w) || PROXY_WORKER_IS_SPARE(w)) {
            continue;
        }
        if (w->s->lbset < me->s->lbset
            || (w->s->lbset == me->s->lbset && !PROXY_WORKER_IS_STANDBY(w))) {
            return 1;
        }
    }
    return 0;
}

static int held_in_standby(proxy_balancer *b, const proxy_worker *w)
{
    bbs_slot_t *slot;

    if (!PROXY_WORKER_IS_STANDBY(w)) {
        return 0;
    }
    slot = bbs_shm_member(b, w, 0);
    return slot && (bbs_shm_flags(slot) & BBS_SLOT_MODULE_SET_STBY);
}

int bbs_sticky_in_rotation(proxy_balancer *b, proxy_worker *w)
{
    if (!*b->s->sticky || !*w->s->route) {
        return -1;
    }
    if (!PROXY_WORKER_IS_USABLE(w)) {
        return 0;
    }
    /* nofailover=On: the balancer honours the route, see below */
    if (!b->s->sticky_force && held_in_standby(b, w)) {
        return !bbs_better_member_usable(b, w);
    }
    return 1;
}

/* Where the balancer looks for the route: the URL carries the query up
 * to httpd 2.4.61; 2.4.62 and 2.4.63 keep it out and their balancer does
 * not look at it (PR 69443); from 2.4.64 on the balancer looks at the
 * query separately. */
#if AP_MODULE_MAGIC_AT_LEAST(20120211, 134) \
    && !AP_MODULE_MAGIC_AT_LEAST(20120211, 140)
#define BBS_ROUTE_IN_QUERY 0
#else
#define BBS_ROUTE_IN_QUERY 1
#endif

const char *bbs_sticky_route(request_rec *r, const proxy_balancer *b,
                             const char *url, const char **sticky)
{
    bbs_route_in_t in;

    in.url = url;
    in.query = BBS_ROUTE_IN_QUERY ? r->args : NULL;
    in.cookie = apr_table_get(r->headers_in, "Cookie");
    in.sticky = b->s->sticky;
    in.sticky_path = b->s->sticky_path;
    in.scolonsep = b->s->scolonsep;
    in.separator = b->s->sticky_separator;
    return bbs_route_find(r->pool, &in, sticky);
}

/* The member the balancer's route lookup would take, if it is one the
 * module holds in standby while a better member is usable; else NULL.
 * Members with the route that are not hot standby come first there, so
 * any of them leaves the lookup to the balancer. */
static proxy_worker *standby_target(request_rec *r, proxy_balancer *b,
                                    proxy_server_conf *conf,
                                    const char *route)
{
    proxy_worker *target = NULL;
    int i, better = 0;

#if APR_HAS_THREADS
    if (PROXY_THREAD_LOCK(b) != APR_SUCCESS) {
        return NULL;
    }
#endif
    /* the member list as the balancer would see it (BalancerGrowth) */
    ap_proxy_sync_balancer(b, r->server, conf);
    for (i = 0; i < b->workers->nelts; ++i) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        if (!*w->s->route || strcmp(w->s->route, route)) {
            continue;
        }
        if (!PROXY_WORKER_IS_STANDBY(w)) {
            target = NULL;
            break;
        }
        if (!target && PROXY_WORKER_IS_USABLE(w)) {
            target = w;
        }
    }
    if (target) {
        better = bbs_better_member_usable(b, target);
    }
#if APR_HAS_THREADS
    PROXY_THREAD_UNLOCK(b);
#endif
    return better && held_in_standby(b, target) ? target : NULL;
}

static int any_sticky(const proxy_server_conf *conf)
{
    int i;

    for (i = 0; i < conf->balancers->nelts; ++i) {
        const proxy_balancer *b = &APR_ARRAY_IDX(conf->balancers, i,
                                                 proxy_balancer);
        if (*b->s->sticky && !b->s->sticky_force) {
            return 1;
        }
    }
    return 0;
}

int bbs_sticky_pre_request(proxy_worker **worker, proxy_balancer **balancer,
                           request_rec *r, proxy_server_conf *conf,
                           char **url)
{
    proxy_balancer *b = *balancer, *copy;
    proxy_balancer_shared *s;
    proxy_worker *target;
    const char *route, *sticky;
    int rv;

    if (!b) {
        /* most servers have no balancer with sticky sessions: then the
         * lookup by name, which every request would pay, is not needed */
        if (!any_sticky(conf)
            || ap_cstr_casecmpn(*url, BALANCER_SCHEME,
                                sizeof(BALANCER_SCHEME) - 1)
            || !(b = ap_proxy_get_balancer(r->pool, conf, *url, 1))) {
            return DECLINED;
        }
    }
    /* nofailover=On says a session must not leave a member that can
     * answer: the route is honoured. The copy below has no stickysession,
     * so the call on it comes back here and declines at once. */
    if (!*b->s->sticky || b->s->sticky_force) {
        return DECLINED;
    }
    if (!(route = bbs_sticky_route(r, b, *url, &sticky))
        || !(target = standby_target(r, b, conf, route))) {
        return DECLINED;
    }

    copy = apr_pmemdup(r->pool, b, sizeof(*b));
    s = apr_pmemdup(r->pool, b->s, sizeof(*b->s));
    s->sticky[0] = s->sticky_path[0] = '\0';
    /* the worker list was synced above; a sync on the copy would attach
     * new members to it */
    s->wupdated = copy->wupdated;
    copy->s = s;
    rv = ap_proxy_pre_request(worker, &copy, r, conf, url);
    *balancer = b;

    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, BBSLOGNO(0070)
                  "%s: route %s names %s, held in standby while a "
                  "better member is usable; chose %s",
                  b->s->name, route, bbs_wname(target),
                  *worker ? bbs_wname(*worker) : "none");
    if (rv == OK && *worker) {
        /* what the balancer sets for a request whose route it found */
        apr_table_setn(r->notes, "session-sticky", sticky);
        apr_table_setn(r->notes, "session-route", route);
        apr_table_setn(r->subprocess_env, "BALANCER_SESSION_STICKY", sticky);
        apr_table_setn(r->subprocess_env, "BALANCER_SESSION_ROUTE", route);
        apr_table_setn(r->subprocess_env, "BALANCER_NAME", b->s->name);
        apr_table_setn(r->subprocess_env, "BALANCER_ROUTE_CHANGED", "1");
    }
    return rv;
}
