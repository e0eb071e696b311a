/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * SetHandler bbstatus: every balancer of the virtual host (as
 * balancer-manager, which edits them), every member,
 * and for BBSTATUS members the record the checker wrote last, as HTML,
 * JSON or Prometheus text. Read-only: it changes nothing and starts no
 * probe. Whatever a node sent is escaped for the format it appears in.
 * This file negotiates the format and writes JSON and Prometheus text;
 * the page is mod_bbstatus_html.c's.
 */
#include <string.h>

#include "apr_lib.h"
#include "apr_strings.h"
#include "http_protocol.h"
#include "http_request.h"

#include <jansson.h>

#include "bbs_accept.h"
#include "bbs_policy.h"
#include "mod_bbstatus_view.h"
#include "mod_bbstatus_html.h"
#include "mod_bbstatus_handler.h"

/* ---- JSON ------------------------------------------------------------ */

static json_t *history_json(request_rec *r, const bbs_row_t *row);

static json_t *time_or_null(apr_pool_t *p, apr_time_t t)
{
    return t ? json_string(bbs_view_time(p, t)) : json_null();
}

/* null while the member is not warming up */
static json_t *warmup_json(const bbs_row_t *row)
{
    json_t *o;

    if (!row->warmup) {
        return json_null();
    }
    o = json_object();
    json_object_set_new(o, BBS_KEY_SHARE, json_real(row->warm_share));
    json_object_set_new(o, BBS_KEY_SECONDS_LEFT,
                        json_real(row->warm_seconds_left));
    json_object_set_new(o, BBS_KEY_HELD, json_boolean(row->warm_held));
    json_object_set_new(o, BBS_KEY_TEXT, json_string(row->warmup));
    return o;
}

static json_t *member_json(request_rec *r, const bbs_row_t *row)
{
    const proxy_worker *w = row->worker;
    json_t *m = json_object();
    int checked = row->checked;

    json_object_set_new(m, BBS_KEY_NAME, json_string(bbs_wname(w)));
    json_object_set_new(m, BBS_KEY_HCMETHOD,
                        json_string(ap_proxy_show_hcmethod(w->s->method)));
    json_object_set_new(m, BBS_KEY_IN_ROTATION,
                        json_boolean(row->in_rotation));
    json_object_set_new(m, BBS_KEY_IN_ROTATION_STICKY,
                        row->in_rotation_sticky < 0
                            ? json_null()
                            : json_boolean(row->in_rotation_sticky));
    json_object_set_new(m, BBS_KEY_FLAGS, json_string(row->flags));
    if (!row->ours) {
        return m;
    }
    json_object_set_new(m, BBS_KEY_PROBE_URL, json_string(row->probe_url));
    json_object_set_new(m, BBS_KEY_STATE,
                        row->state ? json_string(row->state) : json_null());
    json_object_set_new(m, BBS_KEY_HTTP_STATUS,
                        row->http_status ? json_integer(row->http_status)
                                         : json_null());
    json_object_set_new(m, BBS_KEY_DECISION,
                        json_string(row->decision));
    json_object_set_new(m, BBS_KEY_REASON,
                        json_string(row->reason));
    json_object_set_new(m, BBS_KEY_CHECKED_AT,
                        time_or_null(r->pool, row->checked_at));
    json_object_set_new(m, BBS_KEY_CHANGED_AT,
                        time_or_null(r->pool, row->changed_at));
    json_object_set_new(m, BBS_KEY_LATENCY_MS,
                        checked ? json_real((double)row->latency / 1000.0)
                                : json_null());
    json_object_set_new(m, BBS_KEY_INTERVAL_MS,
                        row->interval
                            ? json_real((double)row->interval / 1000.0)
                            : json_null());
    json_object_set_new(m, BBS_KEY_PASSES, json_integer(row->passes));
    json_object_set_new(m, BBS_KEY_HCPASSES, json_integer(row->hcpasses));
    json_object_set_new(m, BBS_KEY_FAILS, json_integer(row->fails));
    json_object_set_new(m, BBS_KEY_HCFAILS, json_integer(row->hcfails));
    json_object_set_new(m, BBS_KEY_CHECKS,
                        json_integer((json_int_t)row->checks));
    json_object_set_new(m, BBS_KEY_FAILURES,
                        json_integer((json_int_t)row->failures));
    json_object_set_new(m, BBS_KEY_HISTORY, history_json(r, row));
    json_object_set_new(m, BBS_KEY_ANSWER_MS,
                        row->latency_us
                            ? json_real((double)row->latency_us / 1000.0)
                            : json_null());
    json_object_set_new(m, BBS_KEY_WARMUP, warmup_json(row));
    return m;
}

static json_t *history_json(request_rec *r, const bbs_row_t *row)
{
    json_t *h = json_array();
    apr_uint32_t i;

    for (i = 0; i < row->changes; ++i) {
        const bbs_change_t *c = row->history[i];
        json_t *e = json_object();

        json_object_set_new(e, BBS_KEY_AT, json_string(bbs_view_time(r->pool,
                                                               c->at)));
        json_object_set_new(e, BBS_KEY_FROM,
                            json_string(bbs_decision_name(c->from)));
        json_object_set_new(e, BBS_KEY_TO,
                            json_string(bbs_decision_name(c->to)));
        json_object_set_new(e, BBS_KEY_STATE, *c->state
                                                  ? json_string(c->state)
                                                  : json_null());
        json_object_set_new(e, BBS_KEY_REASON, json_string(c->reason));
        json_array_append_new(h, e);
    }
    return h;
}

static json_t *strings_json(const apr_array_header_t *a)
{
    json_t *out = json_array();
    int i;

    for (i = 0; i < a->nelts; ++i) {
        json_array_append_new(out,
                              json_string(APR_ARRAY_IDX(a, i, const char *)));
    }
    return out;
}

static void send_json(request_rec *r, apr_array_header_t *rows)
{
    json_t *root = json_object(), *balancers = json_array(), *members = NULL;
    const proxy_balancer *current = NULL;
    char *text;
    int i;

    json_object_set_new(root, BBS_KEY_MODULE, json_string(BBS_MODULE_NAME));
    json_object_set_new(root, BBS_KEY_VERSION, json_string(BBS_VERSION));
    json_object_set_new(root, BBS_KEY_GENERATED_AT,
                        json_string(bbs_view_time(r->pool, apr_time_now())));
    for (i = 0; i < rows->nelts; ++i) {
        const bbs_row_t *row = &APR_ARRAY_IDX(rows, i, bbs_row_t);

        if (row->balancer != current) {
            json_t *b = json_object();
            current = row->balancer;
            members = json_array();
            json_object_set_new(b, BBS_KEY_NAME,
                                json_string(current->s->name));
            json_object_set_new(b, BBS_KEY_VIRTUAL_HOST,
                                json_string(row->vhost));
            json_object_set_new(b, BBS_KEY_MEMBERS, members);
            json_array_append_new(balancers, b);
        }
        json_array_append_new(members, member_json(r, row));
    }
    json_object_set_new(root, BBS_KEY_BALANCERS, balancers);
    json_object_set_new(root, BBS_KEY_OTHER_VIRTUAL_HOSTS,
                        strings_json(bbs_view_elsewhere(r)));
    text = json_dumps(root, JSON_INDENT(1) | JSON_ENSURE_ASCII);
    json_decref(root);
    ap_set_content_type(r, "application/json");
    if (text) {
        if (!r->header_only) {
            ap_rputs(text, r);
            ap_rputs("\n", r);
        }
        free(text);
    }
}

/* ---- Prometheus text exposition -------------------------------------- */

static const char *label(apr_pool_t *p, const char *v)
{
    char *out = apr_palloc(p, strlen(v) * 2 + 1), *o = out;

    for (; *v; ++v) {
        if (*v == '\\' || *v == '"') {
            *o++ = '\\';
            *o++ = *v;
        }
        else if (*v == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        }
        else {
            *o++ = *v;
        }
    }
    *o = '\0';
    return out;
}

/* One metric: which members it covers and how it writes a member's
 * sample(s). The table's order is the exposition's. */
typedef struct metric_t metric_t;
typedef void metric_fn(request_rec *r, const metric_t *m,
                       const char *labels, const bbs_row_t *row);
struct metric_t {
    const char *name;
    const char *type;
    const char *help;
    int every_member; /* 1: members of other hcmethods too */
    metric_fn *write;
};

static void sample_int(request_rec *r, const metric_t *m, const char *labels,
                       apr_int64_t v)
{
    ap_rprintf(r, "%s{%s} %" APR_INT64_T_FMT "\n", m->name, labels, v);
}

static void sample_seconds(request_rec *r, const metric_t *m,
                           const char *labels, apr_int64_t us, int digits)
{
    ap_rprintf(r, "%s{%s} %.*f\n", m->name, labels, digits, (double)us / 1e6);
}

static void in_rotation(request_rec *r, const metric_t *m,
                        const char *labels, const bbs_row_t *row)
{
    sample_int(r, m, labels, row->in_rotation);
}

static void in_rotation_sticky(request_rec *r, const metric_t *m,
                               const char *labels, const bbs_row_t *row)
{
    /* only members a sticky route can name */
    if (row->in_rotation_sticky >= 0) {
        sample_int(r, m, labels, row->in_rotation_sticky);
    }
}

static void state(request_rec *r, const metric_t *m, const char *labels,
                  const bbs_row_t *row)
{
    if (row->state) {
        ap_rprintf(r, "%s{%s,state=\"%s\"} 1\n", m->name, labels,
                   label(r->pool, row->state));
    }
}

static void decision(request_rec *r, const metric_t *m, const char *labels,
                     const bbs_row_t *row)
{
    ap_rprintf(r, "%s{%s,decision=\"%s\"} 1\n", m->name, labels,
               row->decision);
}

static void http_status(request_rec *r, const metric_t *m,
                        const char *labels, const bbs_row_t *row)
{
    sample_int(r, m, labels, row->http_status);
}

static void checks(request_rec *r, const metric_t *m, const char *labels,
                   const bbs_row_t *row)
{
    sample_int(r, m, labels, (apr_int64_t)row->checks);
}

static void failures(request_rec *r, const metric_t *m, const char *labels,
                     const bbs_row_t *row)
{
    sample_int(r, m, labels, (apr_int64_t)row->failures);
}

static void probe_seconds(request_rec *r, const metric_t *m,
                          const char *labels, const bbs_row_t *row)
{
    sample_seconds(r, m, labels, row->latency, 6);
}

static void changed_at(request_rec *r, const metric_t *m,
                       const char *labels, const bbs_row_t *row)
{
    sample_seconds(r, m, labels, row->changed_at, 3);
}

static void checked_at(request_rec *r, const metric_t *m,
                       const char *labels, const bbs_row_t *row)
{
    sample_seconds(r, m, labels, row->checked_at, 3);
}

static void decision_changes(request_rec *r, const metric_t *m,
                             const char *labels, const bbs_row_t *row)
{
    sample_int(r, m, labels, (apr_int64_t)row->changes_total);
}

static void warmup_share(request_rec *r, const metric_t *m,
                         const char *labels, const bbs_row_t *row)
{
    ap_rprintf(r, "%s{%s} %.3f\n", m->name, labels,
               row->warm_share);
}

static void hcinterval(request_rec *r, const metric_t *m,
                       const char *labels, const bbs_row_t *row)
{
    sample_seconds(r, m, labels, row->worker->s->interval, 3);
}

static const metric_t metrics[] = {
    {"bbstatus_member_in_rotation", "gauge",
     "1 when the balancer can choose the member now", 1, in_rotation},
    {"bbstatus_member_state", "gauge",
     "1 for the state the member reported last", 0, state},
    {"bbstatus_member_decision", "gauge",
     "1 for the module's current decision on the member", 0, decision},
    {"bbstatus_member_http_status", "gauge",
     "HTTP status of the last probe, 0 for none", 0, http_status},
    {"bbstatus_checks_total", "counter", "checks run on the member", 0,
     checks},
    {"bbstatus_check_failures_total", "counter",
     "checks that learned nothing trustworthy (fail)", 0, failures},
    {"bbstatus_probe_seconds", "gauge", "duration of the last probe", 0,
     probe_seconds},
    {"bbstatus_member_changed_timestamp_seconds", "gauge",
     "when the decision last changed (Unix time)", 0, changed_at},
    {"bbstatus_member_in_rotation_sticky", "gauge",
     "1 when a request whose sticky route names the member reaches it now",
     1, in_rotation_sticky},
    {"bbstatus_member_checked_timestamp_seconds", "gauge",
     "when the member was last checked (Unix time), 0 for never", 0,
     checked_at},
    {"bbstatus_member_decision_changes_total", "counter",
     "decision changes since the member's record was made", 0,
     decision_changes},
    {"bbstatus_member_hcinterval_seconds", "gauge",
     "the member's hcinterval: the time between two scheduled checks", 0,
     hcinterval},
    {"bbstatus_member_warmup_share", "gauge",
     "share of its full share of new requests without a route the member "
     "is offered (BBStatusWarmup), 1 when not warming up", 0, warmup_share},
};

static void send_prometheus(request_rec *r, apr_array_header_t *rows)
{
    const apr_array_header_t *elsewhere;
    const char **labels;
    apr_size_t mi;
    int i;

    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    if (r->header_only) {
        return;
    }
    /* a scrape of a host without the balancers says where they are */
    elsewhere = bbs_view_elsewhere(r);
    for (i = 0; i < elsewhere->nelts; ++i) {
        ap_rprintf(r, "# balancers of virtual host %s are listed by the "
                   "bbstatus handler there, and all in server-status\n",
                   label(r->pool, APR_ARRAY_IDX(elsewhere, i, const char *)));
    }
    labels = apr_palloc(r->pool, sizeof(*labels) * (rows->nelts + 1));
    for (i = 0; i < rows->nelts; ++i) {
        const bbs_row_t *row = &APR_ARRAY_IDX(rows, i, bbs_row_t);

        labels[i] = apr_psprintf(r->pool, "balancer=\"%s\",member=\"%s\","
                                 "vhost=\"%s\"",
                                 label(r->pool, row->balancer->s->name),
                                 label(r->pool, bbs_wname(row->worker)),
                                 label(r->pool, row->vhost));
    }
    for (mi = 0; mi < sizeof(metrics) / sizeof(metrics[0]); ++mi) {
        const metric_t *m = &metrics[mi];

        ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help,
                   m->name, m->type);
        for (i = 0; i < rows->nelts; ++i) {
            const bbs_row_t *row = &APR_ARRAY_IDX(rows, i, bbs_row_t);

            if (row->ours || m->every_member) {
                m->write(r, m, labels[i], row);
            }
        }
    }
}

/* ---- the handler ----------------------------------------------------- */

typedef struct {
    const char *format; /* NULL: none asked for in the query */
    int refresh;        /* seconds, 0: none */
} page_args;

/* ?format= and ?refresh=, percent-decoded; other keys are ignored as
 * mod_status does. HTTP_BAD_REQUEST for a value that cannot be used. */
static int parse_args(request_rec *r, page_args *a)
{
    char *args = r->args ? apr_pstrdup(r->pool, r->args) : NULL;
    char *pair, *last;

    a->format = NULL;
    a->refresh = 0;
    for (pair = args ? apr_strtok(args, "&", &last) : NULL; pair;
         pair = apr_strtok(NULL, "&", &last)) {
        char *value = strchr(pair, '=');

        if (value) {
            *value++ = '\0';
        }
        if (ap_unescape_urlencoded(pair)
            || (value && ap_unescape_urlencoded(value))) {
            return HTTP_BAD_REQUEST;
        }
        if (!strcmp(pair, "format")) {
            if (!value) {
                return HTTP_BAD_REQUEST;
            }
            if (!a->format) {
                a->format = value;
            }
        }
        else if (!strcmp(pair, "refresh")) {
            char *end;
            apr_int64_t n = value && apr_isdigit(*value)
                                ? apr_strtoi64(value, &end, 10)
                                : 0;

            if (n < 1 || n > 86400 || *end) {
                return HTTP_BAD_REQUEST;
            }
            a->refresh = (int)n;
        }
    }
    return OK;
}

/* HTML unless the client prefers JSON; a client that accepts neither gets
 * the HTML (RFC 9110 allows ignoring Accept instead of a 406). */
static const char *negotiate(request_rec *r)
{
    return bbs_accept_prefers_json(r->pool,
                                   apr_table_get(r->headers_in, "Accept"))
               ? "json"
               : "html";
}

int bbs_handler(request_rec *r)
{
    apr_array_header_t *rows;
    page_args args;
    const char *format;

    if (!r->handler || strcmp(r->handler, BBS_HANDLER_NAME)) {
        return DECLINED;
    }
    /* Allow: is built from this mask (HEAD comes with GET) */
    ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, -1);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    if (parse_args(r, &args) != OK) {
        return HTTP_BAD_REQUEST;
    }
    format = args.format;
    if (!format) {
        format = negotiate(r);
        apr_table_mergen(r->headers_out, "Vary", "Accept");
    }
    if (strcmp(format, "json") && strcmp(format, "prometheus")
        && strcmp(format, "html")) {
        return HTTP_BAD_REQUEST;
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    rows = bbs_view_collect(r, BBS_VIEW_VHOST);
    if (!strcmp(format, "json")) {
        send_json(r, rows);
    }
    else if (!strcmp(format, "prometheus")) {
        send_prometheus(r, rows);
    }
    else {
        bbs_html_send(r, rows, args.refresh);
    }
    return OK;
}

