/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * One row per balancer member as the diagnostics show it, gathered once
 * per request for the handler and the server-status section alike.
 */
#include <string.h>

#include "apr_hash.h"
#include "apr_strings.h"
#include "http_main.h"

#include "bbs_policy.h"
#include "bbs_warmup.h"
#include "mod_bbstatus_method.h"
#include "mod_bbstatus_shm.h"
#include "mod_bbstatus_probe.h"
#include "mod_bbstatus_sticky.h"
#include "mod_bbstatus_view.h"

const char *bbs_view_time(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t e;

    apr_time_exp_gmt(&e, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                        e.tm_year + 1900, e.tm_mon + 1, e.tm_mday,
                        e.tm_hour, e.tm_min, e.tm_sec, e.tm_usec / 1000);
}

static const char *worker_flags(apr_pool_t *p, const proxy_worker *w)
{
    char *s = ap_proxy_parse_wstatus(p, (proxy_worker *)w);
    apr_size_t n = strlen(s);

    while (n > 0 && s[n - 1] == ' ') {
        s[--n] = '\0';
    }
    return s;
}

const char *bbs_view_vhost(apr_pool_t *p, const server_rec *s)
{
    const char *name = s->server_hostname ? s->server_hostname : "-";
    apr_port_t port = s->is_virtual && s->addrs ? s->addrs->host_port
                                                : s->port;

    /* port 0: <VirtualHost *>, or a main server whose ServerName has
     * none */
    return port ? apr_psprintf(p, "%s:%u", name, (unsigned)port) : name;
}

static void collect_server(request_rec *r, server_rec *s,
                           apr_array_header_t *rows, apr_hash_t *seen)
{
    proxy_server_conf *conf = ap_get_module_config(s->module_config,
                                                   &proxy_module);
    const char *vhost = bbs_view_vhost(r->pool, s);
    proxy_balancer *b;
    int i, k;

    if (!conf) {
        return;
    }
    b = (proxy_balancer *)conf->balancers->elts;
    for (i = 0; i < conf->balancers->nelts; ++i, ++b) {
        if (seen) {
            /* a virtual host's copy of a main server balancer shares its
             * members array: one balancer, listed where it is defined */
            if (apr_hash_get(seen, &b->workers, sizeof(b->workers))) {
                continue;
            }
            apr_hash_set(seen, &b->workers, sizeof(b->workers), b);
        }
        /* a member added in balancer-manager reaches a child's view of the
         * balancer only when the child syncs it, which mod_proxy_balancer
         * does for proxied requests alone: without this, a child that
         * serves only this page would leave the member out */
        if (b->s->wupdated > b->wupdated
            && PROXY_THREAD_LOCK(b) == APR_SUCCESS) {
            ap_proxy_sync_balancer(b, s, conf);
            PROXY_THREAD_UNLOCK(b);
        }
        for (k = 0; k < b->workers->nelts; ++k) {
            proxy_worker *w = APR_ARRAY_IDX(b->workers, k, proxy_worker *);
            bbs_row_t *row = apr_array_push(rows);

            memset(row, 0, sizeof(*row));
            row->balancer = b;
            row->worker = w;
            row->vhost = vhost;
            row->ours = bbs_method_is(w);
            row->flags = worker_flags(r->pool, w);
            /* a hot standby member is usable, yet chosen only while no
             * better member is; a draining one (Drn) only serves requests
             * whose sticky route names it */
            row->in_rotation = PROXY_WORKER_IS_USABLE(w)
                               && !PROXY_WORKER_IS_DRAINING(w)
                               && !((PROXY_WORKER_IS_STANDBY(w)
                                     || PROXY_WORKER_IS_SPARE(w))
                                    && bbs_better_member_usable(b, w));
            row->in_rotation_sticky = bbs_sticky_in_rotation(b, w);
            if (row->ours) {
                bbs_slot_t *slot = bbs_shm_member(b, w, 0);
                row->probe_url = bbs_probe_url(r->pool, w);
                if (slot && bbs_shm_read(slot, &row->rec)) {
                    row->has_record = 1;
                }
                if (slot) {
                    bbs_shm_warm(slot, &row->warm);
                    row->latency_us = bbs_shm_latency(slot);
                }
            }
        }
    }
}

static void derive_warmup(apr_pool_t *p, bbs_row_t *row)
{
    const bbs_shm_warm_t *w = &row->warm;
    apr_uint32_t left_ms;

    row->warm_share = 1.0;
    if (!w->share) {
        return;
    }
    left_ms = w->duration_ms > w->progress_ms
                  ? w->duration_ms - w->progress_ms
                  : 0;
    row->warm_share = w->share / 1000.0;
    row->warm_seconds_left = left_ms / 1000.0;
    row->warm_held = w->held != 0;
    row->warmup = w->held
        ? apr_psprintf(p, "warming, held at %u%% of its share: its answers "
                       "are more than %u times slower than its peers'",
                       w->share / 10, BBS_WARM_SLOW_RATIO)
        : apr_psprintf(p, "warming, %u%% of its share, %u s left",
                       w->share / 10, (left_ms + 999) / 1000);
}

/* The one place a record becomes what a person or a program reads. */
static void derive(apr_pool_t *p, bbs_row_t *row)
{
    const bbs_record_t *rec = &row->rec;
    apr_uint32_t i;

    if (!row->ours) {
        return;
    }
    derive_warmup(p, row);
    row->passes = row->worker->s->pcount;
    row->hcpasses = row->worker->s->passes;
    row->fails = row->worker->s->fcount;
    row->hcfails = row->worker->s->fails;
    row->checks = rec->checks;
    row->failures = rec->failures;
    row->changes_total = rec->history_len;
    /* a ring, newest at (len - 1) % BBS_HISTORY */
    row->changes = rec->history_len < BBS_HISTORY ? rec->history_len
                                                  : BBS_HISTORY;
    for (i = 0; i < row->changes; ++i) {
        row->history[i] =
            &rec->history[(rec->history_len - 1 - i) % BBS_HISTORY];
    }
    row->checked = row->has_record && rec->checks;
    if (!row->checked) {
        row->decision = BBS_DECISION_PENDING;
        row->reason = row->has_record ? "not checked yet" : "no record";
        return;
    }
    row->decision = bbs_decision_name(rec->decision);
    row->state = rec->has_state ? rec->state : NULL;
    row->reason = rec->reason;
    row->http_status = rec->http_status;
    row->http_text =
        rec->http_status ? apr_itoa(p, rec->http_status)
        : rec->transport != BBS_TX_OK
            ? bbs_transport_name((bbs_transport_e)rec->transport)
            : NULL;
    row->latency = rec->latency;
    row->interval = rec->last_interval;
    row->checked_at = rec->checked_at;
    row->changed_at = rec->changed_at;
}

apr_array_header_t *bbs_view_collect(request_rec *r, int scope)
{
    apr_array_header_t *rows = apr_array_make(r->pool, 8, sizeof(bbs_row_t));
    server_rec *s;
    int i;

    if (scope != BBS_VIEW_SERVER) {
        collect_server(r, r->server, rows, NULL);
    }
    else {
        apr_hash_t *seen = apr_hash_make(r->pool);

        for (s = ap_server_conf; s; s = s->next) {
            collect_server(r, s, rows, seen);
        }
    }
    /* once the array no longer moves: derived fields point into rows */
    for (i = 0; i < rows->nelts; ++i) {
        derive(r->pool, &APR_ARRAY_IDX(rows, i, bbs_row_t));
    }
    return rows;
}

/* Marks the balancers of s as seen; 1 when one of them was not seen
 * before (s defines it rather than inheriting it). */
static int defines_balancer(const server_rec *s, apr_hash_t *seen)
{
    proxy_server_conf *conf = ap_get_module_config(s->module_config,
                                                   &proxy_module);
    int i, found = 0;

    for (i = 0; conf && i < conf->balancers->nelts; ++i) {
        const proxy_balancer *b = &APR_ARRAY_IDX(conf->balancers, i,
                                                 proxy_balancer);
        if (!apr_hash_get(seen, &b->workers, sizeof(b->workers))) {
            apr_hash_set(seen, &b->workers, sizeof(b->workers), b);
            found = 1;
        }
    }
    return found;
}

apr_array_header_t *bbs_view_elsewhere(request_rec *r)
{
    apr_array_header_t *out = apr_array_make(r->pool, 2,
                                             sizeof(const char *));
    apr_hash_t *seen = apr_hash_make(r->pool);
    server_rec *s;

    /* what r's host shows needs no pointer to it */
    defines_balancer(r->server, seen);
    for (s = ap_server_conf; s; s = s->next) {
        if (s != r->server && defines_balancer(s, seen)) {
            APR_ARRAY_PUSH(out, const char *) = bbs_view_vhost(r->pool, s);
        }
    }
    return out;
}

