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
#include <strings.h>

#include "apr_lib.h"
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

/* One inline style block and no style attribute, script or outside
 * resource: the page works offline and behind a Content-Security-Policy
 * that allows this block by its hash (BBS_PAGE_CSS_SHA256, sent in the
 * page's own policy). Change the CSS and the hash together: the tests
 * compute it. Below 760 px a member row wraps into labelled items. */
#define BBS_PAGE_CSS \
    "body{font:14px/1.35 system-ui,sans-serif;margin:8px;color:#111;" \
    "background:#fff}" \
    "h1{font-size:18px;margin:0 0 2px}" \
    "h2{font-size:16px;margin:14px 0 2px;overflow-wrap:anywhere}" \
    "p{margin:2px 0}.g{color:#555}.sum{margin:0 0 4px}" \
    ".bad{color:#a00;font-weight:700}" \
    "table{border-collapse:collapse;width:100%}" \
    "th{font-size:12px;font-weight:600;color:#444;text-align:left;" \
    "border-bottom:2px solid #999;padding:1px 6px;white-space:nowrap}" \
    "td{padding:2px 6px;vertical-align:top;overflow-wrap:anywhere}" \
    "tr.m td{border-top:1px solid #ccc;white-space:nowrap}" \
    "tr.m td.n,tr.m td.w{white-space:normal}td.n{min-width:14em}" \
    "tr.r td{padding-top:0;font-size:13px;color:#333}" \
    ".d{display:inline-block;min-width:4.6em;text-align:center;" \
    "border:1px solid #777;border-radius:3px;padding:0 4px;" \
    "font-weight:700;white-space:nowrap}" \
    ".route{background:#c6efc6;border-color:#2a7a2a}" \
    ".standby{background:#fff0a8;border-color:#8a6d00}" \
    ".block{background:#f6c4c4;border-color:#a02020}" \
    ".panic{background:#efbdef;border-color:#802080}" \
    ".pending,.other{background:#e6e6e6}" \
    ".u{font-size:12px;color:#555}" \
    ".k{display:inline-block;width:12px;height:12px;margin-right:1px;" \
    "font:9px/12px monospace;text-align:center;border:1px solid #777}" \
    "details,summary{display:inline}summary{cursor:pointer;color:#555}" \
    "details[open]{display:block}" \
    "ol{margin:2px 0 4px;padding-left:22px}" \
    "@media (max-width:760px){thead{display:none}" \
    "table,tbody,tr,td{display:block}" \
    "tr.m{display:flex;flex-wrap:wrap;gap:2px 12px;" \
    "border-top:1px solid #ccc;padding-top:4px}" \
    "tr.m td{border:0;padding:0}tr.m td.n{flex-basis:100%;min-width:0}" \
    "tr.r td{padding:2px 0 4px}" \
    "td[data-l]::before{content:attr(data-l) \": \";color:#666}}"
#define BBS_PAGE_CSS_SHA256 "sha256-DzMKBn6+vG4rIvKdr5clHBwx/wnyYDvbR1/XaB1AJmk="

static const char *esc(request_rec *r, const char *s)
{
    return ap_escape_html2(r->pool, s, 1);
}

/* "-": the balancer has no stickysession or the member no route */
static const char *sticky_word(int v)
{
    return v < 0 ? "-" : v ? "yes" : "no";
}

/* "0.4 s ago": what an administrator compares with the interval */
static const char *age(apr_pool_t *p, apr_time_t now, apr_time_t t)
{
    double s = t < now ? (double)(now - t) / APR_USEC_PER_SEC : 0.0;

    if (s < 10) {
        return apr_psprintf(p, "%.1f s ago", s);
    }
    if (s < 120) {
        return apr_psprintf(p, "%d s ago", (int)s);
    }
    if (s < 7200) {
        return apr_psprintf(p, "%d min ago", (int)(s / 60));
    }
    return apr_psprintf(p, "%d h ago", (int)(s / 3600));
}

/* The summary line of the members of one balancer, rows[from, to). */
static void html_summary(request_rec *r, apr_array_header_t *rows, int from,
                         int to)
{
    int i, serving = 0, standby = 0, blocked = 0, pending = 0, panic = 0;

    for (i = from; i < to; ++i) {
        const bbs_row *row = &APR_ARRAY_IDX(rows, i, bbs_row);
        const char *d = row->ours ? bbs_view_decision(row) : "";

        serving += row->in_rotation;
        standby += !strcmp(d, BBS_DECISION_STANDBY);
        blocked += !strcmp(d, BBS_DECISION_BLOCK);
        pending += !strcmp(d, BBS_DECISION_PENDING);
        panic |= !strcmp(d, BBS_DECISION_PANIC);
    }
    ap_rprintf(r, "<p class=\"sum\"><span%s>%d of %d member%s serving</span>"
               " &middot; %d standby &middot; %d blocked%s &middot; "
               "<span%s>panic: %s</span></p>\n",
               serving ? "" : " class=\"bad\"", serving, to - from,
               to - from == 1 ? "" : "s", standby, blocked,
               pending ? apr_psprintf(r->pool, " &middot; %d pending",
                                      pending)
                       : "",
               panic ? " class=\"bad\"" : "", panic ? "yes" : "no");
}

static const char *html_rotation(request_rec *r, const bbs_row *row)
{
    if (row->in_rotation_sticky < 0) {
        return row->in_rotation ? "yes" : "no";
    }
    return apr_psprintf(r->pool, "%s <span class=\"u\">sticky: %s</span>",
                        row->in_rotation ? "yes" : "no",
                        sticky_word(row->in_rotation_sticky));
}

/* Newest first, as small marks whose title carries time and reason, and
 * as a list a click opens (no hover on a phone). */
static void html_history(request_rec *r, const bbs_record_t *rec, int marks)
{
    apr_uint32_t n = rec->history_len < BBS_HISTORY ? rec->history_len
                                                    : BBS_HISTORY;
    apr_uint32_t k;

    if (!n) {
        if (marks) {
            ap_rputs("-", r);
        }
        return;
    }
    if (!marks) {
        ap_rprintf(r, " &middot; <details><summary>history: %u change%s"
                   "</summary><ol>", n, n == 1 ? "" : "s");
    }
    for (k = 0; k < n; ++k) {
        const bbs_change_t *c =
            &rec->history[(rec->history_len - 1 - k) % BBS_HISTORY];
        const char *to = bbs_decision_name(c->to);
        const char *text = apr_psprintf(
            r->pool, "%s %s &rarr; %s%s%s%s: %s", rfc3339(r->pool, c->at),
            bbs_decision_name(c->from), to, *c->state ? " (" : "",
            *c->state ? esc(r, c->state) : "", *c->state ? ")" : "",
            esc(r, c->reason));

        if (marks) {
            ap_rprintf(r, "<span class=\"k %s\" title=\"%s\">%c</span>", to,
                       text, apr_toupper(*to));
        }
        else {
            ap_rprintf(r, "<li>%s</li>", text);
        }
    }
    if (!marks) {
        ap_rputs("</ol></details>", r);
    }
}

static void html_member(request_rec *r, const bbs_row *row, apr_time_t now)
{
    const bbs_record_t *rec = &row->rec;
    const proxy_worker *w = row->worker;
    int checked = row->has_record && rec->checks;
    const char *decision, *http;

    ap_rprintf(r, "<tr class=\"m\" data-member=\"%s\"><td class=\"n\">%s",
               esc(r, bbs_wname(w)), esc(r, bbs_wname(w)));
    if (!row->ours) {
        const char *method = ap_proxy_show_hcmethod(w->s->method);

        ap_rprintf(r, "</td><td><span class=\"d other\" title=\"hcmethod="
                   "%s: not checked by mod_bbstatus\">%s</span></td>"
                   "<td data-l=\"state\">-</td><td data-l=\"HTTP\">-</td>"
                   "<td data-l=\"in rotation\">%s</td>"
                   "<td class=\"w\" data-l=\"flags\">%s</td>"
                   "<td colspan=\"5\"></td>"
                   "</tr>\n",
                   esc(r, method), esc(r, method), html_rotation(r, row),
                   esc(r, row->flags));
        return;
    }
    decision = bbs_view_decision(row);
    http = !checked ? "-"
           : rec->http_status ? apr_itoa(r->pool, rec->http_status)
           : rec->transport != BBS_TX_OK
               ? esc(r, bbs_transport_name((bbs_transport_e)rec->transport))
               : "-";
    ap_rprintf(r, "<br><span class=\"u\">%s</span></td>"
               "<td><span class=\"d %s\">%s</span></td>"
               "<td class=\"w\" data-l=\"state\">%s</td>"
               "<td class=\"w\" data-l=\"HTTP\">%s</td>"
               "<td data-l=\"in rotation\">%s</td>"
               "<td class=\"w\" data-l=\"flags\">%s</td>",
               esc(r, row->probe_url), decision, decision,
               checked && rec->has_state ? esc(r, rec->state) : "-", http,
               html_rotation(r, row), esc(r, row->flags));
    if (checked) {
        ap_rprintf(r, "<td data-l=\"checked\" title=\"%s\">%s</td>"
                   "<td data-l=\"latency\">%.1f ms</td>",
                   rfc3339(r->pool, rec->checked_at),
                   age(r->pool, now, rec->checked_at),
                   (double)rec->latency / 1000.0);
    }
    else {
        ap_rputs("<td data-l=\"checked\">-</td><td data-l=\"latency\">-</td>",
                 r);
    }
    ap_rprintf(r, "<td data-l=\"passes/fails\">%d/%d &middot; %d/%d</td>"
               "<td data-l=\"checks/failures\">%" APR_UINT64_T_FMT " / %"
               APR_UINT64_T_FMT "</td><td data-l=\"changes\">",
               w->s->pcount, w->s->passes, w->s->fcount, w->s->fails,
               rec->checks, rec->failures);
    html_history(r, rec, 1);
    ap_rprintf(r, "</td></tr>\n<tr class=\"r\"><td colspan=\"11\">%s",
               checked ? esc(r, rec->reason)
               : row->has_record ? "not checked yet"
                                 : "no record");
    html_history(r, rec, 0);
    ap_rputs("</td></tr>\n", r);
}

static void send_html(request_rec *r, apr_array_header_t *rows, int refresh)
{
    apr_time_t now = apr_time_now();
    int i, j;

    ap_set_content_type(r, "text/html; charset=utf-8");
    apr_table_setn(r->headers_out, "Content-Security-Policy",
                   "default-src 'none'; style-src '" BBS_PAGE_CSS_SHA256
                   "'; base-uri 'none'; form-action 'none'");
    if (refresh) {
        apr_table_setn(r->headers_out, "Refresh",
                       apr_itoa(r->pool, refresh));
    }
    if (r->header_only) {
        return;
    }
    ap_rputs(BBS_DOCTYPE_HTML5
             "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
             "<meta name=\"viewport\" content=\"width=device-width, "
             "initial-scale=1\">\n<title>mod_bbstatus</title>\n"
             "<style>" BBS_PAGE_CSS "</style>\n</head><body>\n", r);
    ap_rprintf(r, "<h1>mod_bbstatus %s</h1>\n<p class=\"g\">Generated "
               "<time>%s</time>%s. Also as <a href=\"?format=json\">JSON"
               "</a> and <a href=\"?format=prometheus\">Prometheus</a>."
               "</p>\n",
               BBS_VERSION, rfc3339(r->pool, now),
               refresh ? apr_psprintf(r->pool, ", refreshed every %d s",
                                      refresh)
                       : ", <a href=\"?refresh=5\">refresh every 5 s</a>");
    for (i = 0; i < rows->nelts; i = j) {
        const proxy_balancer *b = APR_ARRAY_IDX(rows, i, bbs_row).balancer;

        for (j = i; j < rows->nelts
                    && APR_ARRAY_IDX(rows, j, bbs_row).balancer == b;
             ++j) {
        }
        ap_rprintf(r, "<h2>%s</h2>\n", esc(r, b->s->name));
        html_summary(r, rows, i, j);
        ap_rputs("<table><thead><tr><th>member</th><th>decision</th>"
                 "<th>state</th><th>HTTP</th><th>in rotation</th>"
                 "<th>flags</th><th>checked</th><th>latency</th>"
                 "<th>passes/fails</th><th>checks/failures</th>"
                 "<th>changes</th></tr></thead>\n<tbody>\n", r);
        for (; i < j; ++i) {
            html_member(r, &APR_ARRAY_IDX(rows, i, bbs_row), now);
        }
        ap_rputs("</tbody></table>\n", r);
    }
    if (!rows->nelts) {
        ap_rputs("<p>No balancer in this virtual host.</p>\n", r);
    }
    ap_rputs("</body></html>\n", r);
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

/* The weight in thousandths that Accept gives type/sub: that of the most
 * specific range matching it (RFC 9110, 12.5.1), 0 when none does. A
 * range with a malformed weight counts as absent. */
static int accept_weight(apr_pool_t *p, const char *accept,
                         const char *type, const char *sub)
{
    char *list = apr_pstrdup(p, accept), *elt, *last;
    int best = -1, weight = 0;

    for (elt = apr_strtok(list, ",", &last); elt;
         elt = apr_strtok(NULL, ",", &last)) {
        char *params = strchr(elt, ';'), *slash, *param, *plast;
        int q = 1000, ok = 1, spec;

        if (params) {
            *params++ = '\0';
        }
        apr_collapse_spaces(elt, elt);
        slash = strchr(elt, '/');
        if (!slash || slash == elt || !slash[1]) {
            continue;
        }
        *slash++ = '\0';
        if (!strcmp(elt, "*")) {
            spec = strcmp(slash, "*") ? -1 : 0;
        }
        else if (strcasecmp(elt, type)) {
            continue;
        }
        else {
            spec = !strcmp(slash, "*") ? 1 : !strcasecmp(slash, sub) ? 2 : -2;
        }
        if (spec == -2) {
            continue;
        }
        for (param = params ? apr_strtok(params, ";", &plast) : NULL;
             param && ok; param = apr_strtok(NULL, ";", &plast)) {
            const char *v;
            int digits = 0;

            while (apr_isspace(*param)) {
                ++param;
            }
            if (strncasecmp(param, "q=", 2)) {
                continue;
            }
            /* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
            v = param + 2;
            ok = *v == '0' || *v == '1';
            q = (*v++ - '0') * 1000;
            if (ok && *v == '.') {
                int scale = 100;
                for (++v; apr_isdigit(*v) && digits < 3; ++v, ++digits) {
                    q += (*v - '0') * scale;
                    scale /= 10;
                }
            }
            while (apr_isspace(*v)) {
                ++v;
            }
            ok = ok && !*v && q <= 1000;
        }
        if (!ok || spec < 0) {
            continue;
        }
        if (spec > best || (spec == best && q > weight)) {
            best = spec;
            weight = q;
        }
    }
    return weight;
}

/* HTML unless the client prefers JSON; a client that accepts neither gets
 * the HTML (RFC 9110 allows ignoring Accept instead of a 406). */
static const char *negotiate(request_rec *r)
{
    const char *accept = apr_table_get(r->headers_in, "Accept");

    if (!accept) {
        return "html";
    }
    return accept_weight(r->pool, accept, "application", "json")
                   > accept_weight(r->pool, accept, "text", "html")
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
    rows = bbs_view_collect(r);
    if (!strcmp(format, "json")) {
        send_json(r, rows);
    }
    else if (!strcmp(format, "prometheus")) {
        send_prometheus(r, rows);
    }
    else {
        send_html(r, rows, args.refresh);
    }
    return OK;
}
