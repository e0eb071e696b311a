/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * SetHandler bbstatus: every balancer of the virtual host, every member,
 * and for BBSTATUS members the record the checker wrote last, as HTML,
 * JSON or Prometheus text. Read-only: it changes nothing and starts no
 * probe. Whatever a node sent is escaped for the format it appears in.
 */
#include <string.h>

#include "apr_strings.h"
#include "http_protocol.h"
#include "http_request.h"

#include <jansson.h>

#include "mod_bbstatus_private.h"
#include "mod_bbstatus_view.h"

static const char *rfc3339(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t e;

    apr_time_exp_gmt(&e, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                        e.tm_year + 1900, e.tm_mon + 1, e.tm_mday,
                        e.tm_hour, e.tm_min, e.tm_sec, e.tm_usec / 1000);
}

const char *bbs_worker_flags(apr_pool_t *p, const proxy_worker *w)
{
    char *s = ap_proxy_parse_wstatus(p, (proxy_worker *)w);
    apr_size_t n = strlen(s);

    while (n > 0 && s[n - 1] == ' ') {
        s[--n] = '\0';
    }
    return s;
}

apr_array_header_t *bbs_view_collect(request_rec *r)
{
    proxy_server_conf *conf = ap_get_module_config(r->server->module_config,
                                                   &proxy_module);
    apr_array_header_t *rows = apr_array_make(r->pool, 8, sizeof(bbs_row));
    proxy_balancer *b;
    int i, k;

    if (!conf) {
        return rows;
    }
    b = (proxy_balancer *)conf->balancers->elts;
    for (i = 0; i < conf->balancers->nelts; ++i, ++b) {
        /* a member added in balancer-manager reaches a child's view of the
         * balancer only when the child syncs it, which mod_proxy_balancer
         * does for proxied requests alone: without this, a child that
         * serves only this page would leave the member out */
        if (b->s->wupdated > b->wupdated
            && PROXY_THREAD_LOCK(b) == APR_SUCCESS) {
            ap_proxy_sync_balancer(b, r->server, conf);
            PROXY_THREAD_UNLOCK(b);
        }
        for (k = 0; k < b->workers->nelts; ++k) {
            proxy_worker *w = APR_ARRAY_IDX(b->workers, k, proxy_worker *);
            bbs_row *row = apr_array_push(rows);

            memset(row, 0, sizeof(*row));
            row->balancer = b;
            row->worker = w;
            row->ours = bbs_method_is(w);
            row->flags = bbs_worker_flags(r->pool, w);
            /* a hot standby member is usable, yet chosen only while no
             * better member is */
            row->in_rotation = PROXY_WORKER_IS_USABLE(w)
                               && !((PROXY_WORKER_IS_STANDBY(w)
                                     || PROXY_WORKER_IS_SPARE(w))
                                    && bbs_better_member_usable(b, w));
            row->in_rotation_sticky = bbs_sticky_in_rotation(b, w);
            if (row->ours) {
                bbs_slot_t *slot = bbs_shm_member(b, w, 0);
                row->probe_url = bbs_probe_url(r->pool, w);
                if (slot && bbs_shm_read(slot, &row->rec)) {
                    row->has_record = 1;
                    row->slot_flags = bbs_shm_flags(slot);
                }
            }
        }
    }
    return rows;
}

const char *bbs_view_decision(const bbs_row *row)
{
    if (!row->has_record || !row->rec.checks) {
        return BBS_DECISION_PENDING;
    }
    return bbs_decision_name(bbs_decision_from(row->slot_flags, 1));
}

/* ---- JSON ------------------------------------------------------------ */

static json_t *history_json(request_rec *r, const bbs_record_t *rec);

static json_t *time_or_null(apr_pool_t *p, apr_time_t t)
{
    return t ? json_string(rfc3339(p, t)) : json_null();
}

static json_t *member_json(request_rec *r, const bbs_row *row)
{
    const proxy_worker *w = row->worker;
    const bbs_record_t *rec = &row->rec;
    json_t *m = json_object();
    int checked = row->has_record && rec->checks;

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
    json_object_set_new(m, BBS_KEY_STATE, checked && rec->has_state
                                              ? json_string(rec->state)
                                              : json_null());
    json_object_set_new(m, BBS_KEY_HTTP_STATUS,
                        checked && rec->http_status
                            ? json_integer(rec->http_status)
                            : json_null());
    json_object_set_new(m, BBS_KEY_DECISION,
                        json_string(bbs_view_decision(row)));
    json_object_set_new(m, BBS_KEY_REASON,
                        json_string(checked ? rec->reason
                                            : row->has_record
                                                  ? "not checked yet"
                                                  : "no record"));
    json_object_set_new(m, BBS_KEY_CHECKED_AT,
                        time_or_null(r->pool, checked ? rec->checked_at : 0));
    json_object_set_new(m, BBS_KEY_CHANGED_AT,
                        time_or_null(r->pool, checked ? rec->changed_at : 0));
    json_object_set_new(m, BBS_KEY_LATENCY_MS,
                        checked ? json_real((double)rec->latency / 1000.0)
                                : json_null());
    json_object_set_new(m, BBS_KEY_INTERVAL_MS,
                        checked && rec->last_interval
                            ? json_real((double)rec->last_interval / 1000.0)
                            : json_null());
    json_object_set_new(m, BBS_KEY_PASSES, json_integer(w->s->pcount));
    json_object_set_new(m, BBS_KEY_HCPASSES, json_integer(w->s->passes));
    json_object_set_new(m, BBS_KEY_FAILS, json_integer(w->s->fcount));
    json_object_set_new(m, BBS_KEY_HCFAILS, json_integer(w->s->fails));
    json_object_set_new(m, BBS_KEY_CHECKS,
                        json_integer((json_int_t)rec->checks));
    json_object_set_new(m, BBS_KEY_FAILURES,
                        json_integer((json_int_t)rec->failures));
    json_object_set_new(m, BBS_KEY_HISTORY, history_json(r, rec));
    return m;
}

static json_t *history_json(request_rec *r, const bbs_record_t *rec)
{
    json_t *h = json_array();
    apr_uint32_t n = rec->history_len < BBS_HISTORY ? rec->history_len
                                                    : BBS_HISTORY;
    apr_uint32_t i;

    /* newest first */
    for (i = 0; i < n; ++i) {
        const bbs_change_t *c =
            &rec->history[(rec->history_len - 1 - i) % BBS_HISTORY];
        json_t *e = json_object();

        json_object_set_new(e, BBS_KEY_AT, json_string(rfc3339(r->pool,
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

static void send_json(request_rec *r, apr_array_header_t *rows)
{
    json_t *root = json_object(), *balancers = json_array(), *members = NULL;
    const proxy_balancer *current = NULL;
    char *text;
    int i;

    json_object_set_new(root, BBS_KEY_MODULE, json_string(BBS_MODULE_NAME));
    json_object_set_new(root, BBS_KEY_VERSION, json_string(BBS_VERSION));
    json_object_set_new(root, BBS_KEY_GENERATED_AT,
                        json_string(rfc3339(r->pool, apr_time_now())));
    for (i = 0; i < rows->nelts; ++i) {
        const bbs_row *row = &APR_ARRAY_IDX(rows, i, bbs_row);

        if (row->balancer != current) {
            json_t *b = json_object();
            current = row->balancer;
            members = json_array();
            json_object_set_new(b, BBS_KEY_NAME,
                                json_string(current->s->name));
            json_object_set_new(b, BBS_KEY_MEMBERS, members);
            json_array_append_new(balancers, b);
        }
        json_array_append_new(members, member_json(r, row));
    }
    json_object_set_new(root, BBS_KEY_BALANCERS, balancers);
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

typedef struct {
    const char *name;
    const char *type;
    const char *help;
} metric_t;

static const metric_t metrics[] = {
    {"bbstatus_member_in_rotation", "gauge",
     "1 when the balancer can choose the member now"},
    {"bbstatus_member_state", "gauge",
     "1 for the state the member reported last"},
    {"bbstatus_member_decision", "gauge",
     "1 for the module's current decision on the member"},
    {"bbstatus_member_http_status", "gauge",
     "HTTP status of the last probe, 0 for none"},
    {"bbstatus_checks_total", "counter", "checks run on the member"},
    {"bbstatus_check_failures_total", "counter",
     "checks that learned nothing trustworthy (fail)"},
    {"bbstatus_probe_seconds", "gauge", "duration of the last probe"},
    {"bbstatus_member_changed_timestamp_seconds", "gauge",
     "when the decision last changed (Unix time)"},
    {"bbstatus_member_in_rotation_sticky", "gauge",
     "1 when a request whose sticky route names the member reaches it now"},
};

static void send_prometheus(request_rec *r, apr_array_header_t *rows)
{
    apr_size_t mi;
    int i;

    ap_set_content_type(r, "text/plain; version=0.0.4; charset=utf-8");
    if (r->header_only) {
        return;
    }
    for (mi = 0; mi < sizeof(metrics) / sizeof(metrics[0]); ++mi) {
        const metric_t *m = &metrics[mi];

        ap_rprintf(r, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help,
                   m->name, m->type);
        for (i = 0; i < rows->nelts; ++i) {
            const bbs_row *row = &APR_ARRAY_IDX(rows, i, bbs_row);
            const bbs_record_t *rec = &row->rec;
            const char *labels;
            int checked = row->has_record && rec->checks;

            if ((!row->ours && mi != 0 && mi != 8)
                || (mi == 8 && row->in_rotation_sticky < 0)) {
                continue;
            }
            labels = apr_psprintf(r->pool, "balancer=\"%s\",member=\"%s\"",
                                  label(r->pool, row->balancer->s->name),
                                  label(r->pool, bbs_wname(row->worker)));
            switch (mi) {
            case 0:
                ap_rprintf(r, "%s{%s} %d\n", m->name, labels,
                           row->in_rotation);
                break;
            case 1:
                if (checked && rec->has_state) {
                    ap_rprintf(r, "%s{%s,state=\"%s\"} 1\n", m->name, labels,
                               label(r->pool, rec->state));
                }
                break;
            case 2:
                ap_rprintf(r, "%s{%s,decision=\"%s\"} 1\n", m->name, labels,
                           bbs_view_decision(row));
                break;
            case 3:
                ap_rprintf(r, "%s{%s} %d\n", m->name, labels,
                           checked ? rec->http_status : 0);
                break;
            case 4:
                ap_rprintf(r, "%s{%s} %" APR_UINT64_T_FMT "\n", m->name,
                           labels, rec->checks);
                break;
            case 5:
                ap_rprintf(r, "%s{%s} %" APR_UINT64_T_FMT "\n", m->name,
                           labels, rec->failures);
                break;
            case 6:
                ap_rprintf(r, "%s{%s} %.6f\n", m->name, labels,
                           checked ? (double)rec->latency / 1e6 : 0.0);
                break;
            case 7:
                ap_rprintf(r, "%s{%s} %.3f\n", m->name, labels,
                           rec->changed_at ? (double)rec->changed_at / 1e6
                                           : 0.0);
                break;
            case 8:
                ap_rprintf(r, "%s{%s} %d\n", m->name, labels,
                           row->in_rotation_sticky);
                break;
            }
        }
    }
}

/* ---- HTML ------------------------------------------------------------ */

static const char *esc(request_rec *r, const char *s)
{
    return ap_escape_html2(r->pool, s, 1);
}

/* "-": the balancer has no stickysession or the member no route */
static const char *sticky_word(int v)
{
    return v < 0 ? "-" : v ? "yes" : "no";
}

static void send_html(request_rec *r, apr_array_header_t *rows)
{
    const proxy_balancer *current = NULL;
    int i;

    ap_set_content_type(r, "text/html; charset=utf-8");
    if (r->header_only) {
        return;
    }
    ap_rputs(BBS_DOCTYPE_HTML5
             "<html><head><title>mod_bbstatus</title>\n"
             "<style>body{font-family:sans-serif}table{border-collapse:"
             "collapse}td,th{border:1px solid #999;padding:2px 6px;"
             "text-align:left;vertical-align:top}"
             ".route{background:#dfd}.block{background:#fdd}"
             ".standby{background:#ffd}.panic{background:#fcf}</style>"
             "</head><body>\n", r);
    ap_rprintf(r, "<h1>mod_bbstatus %s</h1>\n<p>Generated %s. Also as "
               "<a href=\"?format=json\">JSON</a> and "
               "<a href=\"?format=prometheus\">Prometheus</a>.</p>\n",
               BBS_VERSION, rfc3339(r->pool, apr_time_now()));
    for (i = 0; i < rows->nelts; ++i) {
        const bbs_row *row = &APR_ARRAY_IDX(rows, i, bbs_row);
        const bbs_record_t *rec = &row->rec;
        const proxy_worker *w = row->worker;
        int checked = row->has_record && rec->checks;
        const char *decision = bbs_view_decision(row);

        if (row->balancer != current) {
            if (current) {
                ap_rputs("</table>\n", r);
            }
            current = row->balancer;
            ap_rprintf(r, "<h2>%s</h2>\n<table><tr><th>member</th>"
                       "<th>hcmethod</th><th>decision</th>"
                       "<th>in rotation</th><th>in rotation (sticky)</th>"
                       "<th>flags</th><th>state</th>"
                       "<th>HTTP</th><th>reason</th><th>checked</th>"
                       "<th>changed</th><th>latency</th><th>passes</th>"
                       "<th>fails</th><th>checks / failures</th>"
                       "<th>recent changes</th></tr>\n",
                       esc(r, current->s->name));
        }
        ap_rprintf(r, "<tr><td>%s%s%s</td><td>%s</td>", esc(r, bbs_wname(w)),
                   row->ours ? "<br><small>" : "",
                   row->ours ? esc(r, row->probe_url) : "",
                   esc(r, ap_proxy_show_hcmethod(w->s->method)));
        if (!row->ours) {
            ap_rprintf(r, "<td>-</td><td>%s</td><td>%s</td><td>%s</td>"
                       "<td colspan=\"10\"></td></tr>\n",
                       row->in_rotation ? "yes" : "no",
                       sticky_word(row->in_rotation_sticky),
                       esc(r, row->flags));
            continue;
        }
        ap_rprintf(r, "<td class=\"%s\">%s</td><td>%s</td><td>%s</td>"
                   "<td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                   "<td>%s</td><td>%s</td><td>%s</td>",
                   decision, decision, row->in_rotation ? "yes" : "no",
                   sticky_word(row->in_rotation_sticky),
                   esc(r, row->flags),
                   checked && rec->has_state ? esc(r, rec->state) : "-",
                   checked && rec->http_status
                       ? apr_itoa(r->pool, rec->http_status)
                       : "-",
                   checked ? esc(r, rec->reason)
                           : row->has_record ? "not checked yet"
                                             : "no record",
                   checked ? rfc3339(r->pool, rec->checked_at) : "-",
                   rec->changed_at ? rfc3339(r->pool, rec->changed_at) : "-",
                   checked ? apr_psprintf(r->pool, "%.1f ms",
                                          (double)rec->latency / 1000.0)
                           : "-");
        ap_rprintf(r, "<td>%d/%d</td><td>%d/%d</td><td>%" APR_UINT64_T_FMT
                   " / %" APR_UINT64_T_FMT "</td><td>",
                   w->s->pcount, w->s->passes, w->s->fcount, w->s->fails,
                   rec->checks, rec->failures);
        {
            apr_uint32_t n = rec->history_len < BBS_HISTORY
                                 ? rec->history_len
                                 : BBS_HISTORY;
            apr_uint32_t k;
            for (k = 0; k < n; ++k) {
                const bbs_change_t *c =
                    &rec->history[(rec->history_len - 1 - k) % BBS_HISTORY];
                ap_rprintf(r, "%s %s &rarr; %s: %s<br>",
                           rfc3339(r->pool, c->at),
                           bbs_decision_name(c->from),
                           bbs_decision_name(c->to), esc(r, c->reason));
            }
        }
        ap_rputs("</td></tr>\n", r);
    }
    if (current) {
        ap_rputs("</table>\n", r);
    }
    else {
        ap_rputs("<p>No balancer in this virtual host.</p>\n", r);
    }
    ap_rputs("</body></html>\n", r);
}

/* ---- the handler ----------------------------------------------------- */

static const char *wanted_format(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");
    char *args = r->args ? apr_pstrdup(r->pool, r->args) : NULL;
    char *pair, *last;

    for (pair = args ? apr_strtok(args, "&", &last) : NULL; pair;
         pair = apr_strtok(NULL, "&", &last)) {
        if (!strncmp(pair, "format=", 7)) {
            return pair + 7;
        }
    }
    if (accept && ap_strcasestr(accept, "application/json")) {
        return "json";
    }
    return "html";
}

int bbs_handler(request_rec *r)
{
    const char *format;
    apr_array_header_t *rows;

    if (!r->handler || strcmp(r->handler, BBS_HANDLER_NAME)) {
        return DECLINED;
    }
    /* Allow: is built from this mask (HEAD comes with GET) */
    ap_allow_standard_methods(r, REPLACE_ALLOW, M_GET, -1);
    if (r->method_number != M_GET) {
        return HTTP_METHOD_NOT_ALLOWED;
    }
    format = wanted_format(r);
    if (strcmp(format, "json") && strcmp(format, "prometheus")
        && strcmp(format, "html")) {
        return HTTP_BAD_REQUEST;
    }
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    rows = bbs_view_collect(r);
    if (!strcmp(format, "json")) {
        send_json(r, rows);
    }
    else if (!strcmp(format, "prometheus")) {
        send_prometheus(r, rows);
    }
    else {
        send_html(r, rows);
    }
    return OK;
}
