/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * BBStatusRetry: a bodyless GET, HEAD or OPTIONS that a BBSTATUS member
 * answered with a 5xx goes to another member when a probe of that member,
 * run at once, says it is leaving (a state outside BBStatusRoute, or the
 * connection refused).
 *
 * mod_proxy fails over only when its scheme handler returns "service
 * unavailable", which mod_proxy_http does only before a response came; an
 * answered 503 is streamed to the client. So a scheme handler ordered
 * before mod_proxy_http's runs the exchange itself (the hook again, which
 * this one then declines), with an output filter that holds a 5xx answer
 * back, first in the request's chain, so that no other filter has seen a
 * byte of it: a content filter that saw an answer which is then dropped
 * (mod_deflate, mod_filter's AddOutputFilterByType) would have made its
 * decision and set its headers for it, not for the answer that replaces
 * it. Once
 * mod_proxy_http returned OK the member is probed: leaving, the held
 * answer is dropped, the request is put back as it was and mod_proxy's
 * loop is told "service unavailable"; staying, the answer goes on as it
 * came, brigade by brigade.
 *
 * Never held: a 5xx larger than HOLD_MAX (passed on as it comes), an
 * answer on the last attempt the balancer allows, or of a member whose
 * errors are ignored, or when no other member is usable (mod_proxy would
 * end with its own 503 page instead of the member's), and any second
 * attempt: one retry at most.
 */
#include "apr_strings.h"
#include "http_core.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"

#include "bbs_retry.h"
#include "mod_bbstatus_config.h"
#include "mod_bbstatus_method.h"
#include "mod_bbstatus_shm.h"
#include "mod_bbstatus_probe.h"
#include "mod_bbstatus_wake.h"
#include "mod_bbstatus_retry.h"

#define FILTER_NAME "BBSTATUS_RETRY"
#define NOTE_RETRIED "bbstatus-retried"
/* the largest 5xx answer held back; error pages are a few kB */
#define HOLD_MAX (64 * 1024)
/* the probe that decides runs while the client waits */
#define PROBE_MAX apr_time_from_sec(1)

typedef enum { UNDECIDED = 0, HOLDING, PASSING } hold_mode_e;

typedef struct {
    apr_array_header_t *held; /* apr_bucket_brigade *, as they came */
    apr_off_t size;
    hold_mode_e mode;
    int eos;
    int removed;
} hold_t;

static ap_filter_rec_t *hold_filter;

static apr_status_t release(ap_filter_t *f, hold_t *h)
{
    apr_status_t rv = APR_SUCCESS;
    int i;

    h->mode = PASSING;
    if (!h->held) {
        return APR_SUCCESS;
    }
    for (i = 0; i < h->held->nelts && rv == APR_SUCCESS; ++i) {
        rv = ap_pass_brigade(f->next,
                             APR_ARRAY_IDX(h->held, i, apr_bucket_brigade *));
    }
    h->held->nelts = 0;
    return rv;
}

static apr_status_t hold_out(ap_filter_t *f, apr_bucket_brigade *bb)
{
    hold_t *h = f->ctx;
    apr_bucket_brigade *keep = NULL;
    apr_bucket *e;
    apr_off_t len = -1;
    apr_status_t rv;

    if (h->mode == UNDECIDED) {
        h->mode = ap_is_HTTP_SERVER_ERROR(f->r->status) ? HOLDING : PASSING;
        if (h->mode == PASSING) {
            /* nothing to hold: the rest of the answer, brigade by
             * brigade, need not pass through here */
            ap_remove_output_filter(f);
            h->removed = 1;
        }
    }
    if (h->mode == PASSING) {
        return ap_pass_brigade(f->next, bb);
    }
    apr_brigade_length(bb, 0, &len);
    if (len < 0 || h->size + len > HOLD_MAX) {
        rv = release(f, h);
        return rv == APR_SUCCESS ? ap_pass_brigade(f->next, bb) : rv;
    }
    for (e = APR_BRIGADE_FIRST(bb); e != APR_BRIGADE_SENTINEL(bb);
         e = APR_BUCKET_NEXT(e)) {
        if (APR_BUCKET_IS_EOS(e)) {
            h->eos = 1;
        }
    }
    /* mod_proxy_http's buckets point into the backend connection's
     * buffers: set them aside into the request's pool */
    rv = ap_save_brigade(f, &keep, &bb, f->r->pool);
    if (keep) {
        if (!h->held) {
            h->held = apr_array_make(f->r->pool, 4, sizeof(keep));
        }
        APR_ARRAY_PUSH(h->held, apr_bucket_brigade *) = keep;
    }
    h->size += len;
    apr_brigade_cleanup(bb);
    return rv;
}

static int idempotent_without_body(request_rec *r)
{
    const char *cl = apr_table_get(r->headers_in, "Content-Length");

    /* method_number is M_GET for HEAD as well */
    if (r->method_number != M_GET && r->method_number != M_OPTIONS) {
        return 0;
    }
    if (apr_table_get(r->headers_in, "Transfer-Encoding")
        || apr_table_get(r->headers_in, "Upgrade")
        || apr_table_get(r->headers_in, "Expect")) {
        return 0;
    }
    return !cl || !strcmp(cl, "0");
}

static int retry_on(request_rec *r)
{
    const bbs_dir_conf_t *c = ap_get_module_config(r->per_dir_config,
                                                   &bbstatus_module);

    return bbs_retry_on(c);
}

/* The scheme handler runs mod_proxy_http's through the hook again, which
 * comes back here: the hold filter in the request's chain says so, without
 * a note (a note costs a table write and an unset on every request). The
 * walk stops at the protocol filters, which come after it. */
static int inner_pass(const request_rec *r)
{
    const ap_filter_t *f;

    for (f = r->output_filters; f && f->frec->ftype < AP_FTYPE_PROTOCOL;
         f = f->next) {
        if (f->frec == hold_filter) {
            return 1;
        }
    }
    return 0;
}

static int may_hold(request_rec *r, proxy_worker *worker,
                    const proxy_balancer *b, const char *proxyhost)
{
    /* every proxied request comes here twice: the cheap tests first */
    return !proxyhost && b
           && (r->method_number == M_GET || r->method_number == M_OPTIONS)
           && !(worker->s->status & PROXY_WORKER_IGNORE_ERRORS)
           && b->s->max_attempts_set && b->s->max_attempts > 0
           && !b->s->sticky_force
           && !inner_pass(r)
           && !apr_table_get(r->notes, NOTE_RETRIED)
           && (!strcasecmp(worker->s->scheme, "http")
               || !strcasecmp(worker->s->scheme, "https"))
           && idempotent_without_body(r) && retry_on(r);
}

static int other_usable(const proxy_balancer *b,
                        const proxy_worker *worker)
{
    int i;

    for (i = 0; i < b->workers->nelts; ++i) {
        const proxy_worker *w = APR_ARRAY_IDX(b->workers, i, proxy_worker *);
        if (w != worker && PROXY_WORKER_IS_USABLE(w)) {
            return 1;
        }
    }
    return 0;
}

/* The same probe and rules as the checker's, with a shorter limit. */
static int leaving(request_rec *r, proxy_balancer *b, proxy_worker *worker)
{
    apr_pool_t *p;
    ap_conf_vector_t *dc;
    bbs_settings_t set;
    proxy_worker *hc;
    bbs_probe_result_t pr;
    bbs_result_t res;
    int out = 0;

    apr_pool_create(&p, r->pool);
    dc = bbs_balancer_dir_config(p, r->server, b);
    bbs_settings_for(&set, dc);
    if (set.timeout > PROBE_MAX) {
        set.timeout = PROBE_MAX;
    }
    hc = bbs_probe_worker_create(worker, r->server, &set, p);
    if (hc) {
        bbs_probe_run(hc, bbs_probe_path(p, worker), r->server, dc, &set, p,
                      r->connection->current_thread, &pr);
        bbs_decide(&set.rules, &pr.answer, &res);
        out = bbs_retry_leaving(res.verdict, pr.answer.transport);
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, BBSLOGNO(0090)
                      "%s member %s answered %d; probed at once: "
                      "%s, %s (%" APR_TIME_T_FMT " us): %s",
                      b->s->name, bbs_wname(worker),
                      r->status, bbs_verdict_name(res.verdict), res.reason,
                      pr.latency, out ? "retried on another member"
                                      : "answer kept");
    }
    apr_pool_destroy(p);
    return out;
}

typedef struct {
    apr_table_t *headers_out;
    apr_table_t *err_headers_out;
    apr_table_t *trailers_out;
    const char *content_type;
    const char *status_line;
    int status;
} saved_t;

/* Before mod_proxy_http runs these tables are nearly always empty: an
 * empty one is not copied, and a retry starts from a new empty one. */
static apr_table_t *copy_of(apr_pool_t *p, const apr_table_t *t)
{
    return apr_is_empty_table(t) ? NULL : apr_table_copy(p, t);
}

static apr_table_t *restored(apr_pool_t *p, apr_table_t *saved)
{
    return saved ? saved : apr_table_make(p, 4);
}

static void save(request_rec *r, saved_t *sv)
{
    sv->headers_out = copy_of(r->pool, r->headers_out);
    sv->err_headers_out = copy_of(r->pool, r->err_headers_out);
    sv->trailers_out = copy_of(r->pool, r->trailers_out);
    sv->content_type = r->content_type;
    sv->status_line = r->status_line;
    sv->status = r->status;
}

static void restore(request_rec *r, const saved_t *sv)
{
    r->headers_out = restored(r->pool, sv->headers_out);
    r->err_headers_out = restored(r->pool, sv->err_headers_out);
    r->trailers_out = restored(r->pool, sv->trailers_out);
    r->content_type = sv->content_type;
    r->status_line = sv->status_line;
    r->status = sv->status;
    r->sent_bodyct = 0;
    apr_table_unset(r->notes, "proxy-status");
}

static int retry_scheme_handler(request_rec *r, proxy_worker *worker,
                                proxy_server_conf *conf, char *url,
                                const char *proxyhost, apr_port_t proxyport)
{
    proxy_balancer *b;
    hold_t *h;
    ap_filter_t *f;
    saved_t sv;
    bbs_slot_t *slot;
    int rv, i;

    if (!worker->balancer || !bbs_method_is(worker)
        || (r->method_number != M_GET && r->method_number != M_OPTIONS)) {
        return DECLINED;
    }
    b = bbs_balancer_of(conf, worker);
    if (!may_hold(r, worker, b, proxyhost)) {
        return DECLINED;
    }
    save(r, &sv);
    h = apr_pcalloc(r->pool, sizeof(*h));
    f = ap_add_output_filter_handle(hold_filter, h, r, r->connection);
    rv = proxy_run_scheme_handler(r, worker, conf, url, proxyhost,
                                  proxyport);
    if (h->mode == HOLDING && (rv != OK || !h->eos || !other_usable(b, worker)
                               || !leaving(r, b, worker))) {
        release(f, h);
    }
    if (!h->removed) {
        ap_remove_output_filter(f);
    }
    if (h->mode != HOLDING) {
        return rv;
    }
    /* the held answer of a leaving member: as if it never came */
    for (i = 0; h->held && i < h->held->nelts; ++i) {
        apr_brigade_cleanup(APR_ARRAY_IDX(h->held, i, apr_bucket_brigade *));
    }
    restore(r, &sv);
    apr_table_setn(r->notes, NOTE_RETRIED, "1");
    slot = bbs_shm_member(b, worker, 0);
    if (slot && bbs_shm_request_probe(slot)) {
        bbs_wake_signal();
    }
    return HTTP_SERVICE_UNAVAILABLE;
}

void bbs_retry_register_hooks(void)
{
    static const char *const before_http[] = {"mod_proxy_http.c", NULL};

    /* ahead of every resource filter (INFLATE is AP_FTYPE_RESOURCE - 1),
     * so that it is first in the chain whatever was added before it */
    hold_filter = ap_register_output_filter(FILTER_NAME, hold_out, NULL,
                                            (ap_filter_type)
                                            (AP_FTYPE_RESOURCE - 2));
    proxy_hook_scheme_handler(retry_scheme_handler, NULL, before_http,
                              APR_HOOK_FIRST);
}
