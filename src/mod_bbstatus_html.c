/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The diagnostics as an HTML page, read at a glance: one table per
 * balancer, a summary line above it. Whatever a node sent is escaped.
 */
#include "apr_strings.h"
#include "http_protocol.h"

#include "bbs_policy.h"
#include "mod_bbstatus_view.h"
#include "mod_bbstatus_html.h"

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
        const bbs_row_t *row = &APR_ARRAY_IDX(rows, i, bbs_row_t);
        const char *d = row->decision ? row->decision : "";

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

static const char *html_rotation(request_rec *r, const bbs_row_t *row)
{
    const char *warm = row->warmup;
    const char *rot = row->in_rotation ? "yes" : "no";

    if (row->in_rotation_sticky >= 0) {
        rot = apr_psprintf(r->pool, "%s <span class=\"u\">sticky: %s</span>",
                           rot, sticky_word(row->in_rotation_sticky));
    }
    return warm ? apr_psprintf(r->pool, "%s <span class=\"u\">%s</span>", rot,
                               esc(r, warm))
                : rot;
}

/* Newest first, as small marks whose title carries time and reason, and
 * as a list a click opens (no hover on a phone). */
static void html_history(request_rec *r, const bbs_row_t *row, int marks)
{
    apr_uint32_t n = row->changes;
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
        const bbs_change_t *c = row->history[k];
        const char *to = bbs_decision_name(c->to);
        const char *text = apr_psprintf(
            r->pool, "%s %s &rarr; %s%s%s%s: %s", bbs_view_time(r->pool, c->at),
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

static void html_member(request_rec *r, const bbs_row_t *row, apr_time_t now)
{
    const proxy_worker *w = row->worker;
    int checked = row->checked;
    const char *decision = row->decision, *http;

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
    http = row->http_text ? esc(r, row->http_text) : "-";
    ap_rprintf(r, "<br><span class=\"u\">%s</span></td>"
               "<td><span class=\"d %s\">%s</span></td>"
               "<td class=\"w\" data-l=\"state\">%s</td>"
               "<td class=\"w\" data-l=\"HTTP\">%s</td>"
               "<td data-l=\"in rotation\">%s</td>"
               "<td class=\"w\" data-l=\"flags\">%s</td>",
               esc(r, row->probe_url), decision, decision,
               row->state ? esc(r, row->state) : "-", http,
               html_rotation(r, row), esc(r, row->flags));
    if (checked) {
        ap_rprintf(r, "<td data-l=\"checked\" title=\"%s\">%s</td>"
                   "<td data-l=\"latency\">%.1f ms</td>",
                   bbs_view_time(r->pool, row->checked_at),
                   age(r->pool, now, row->checked_at),
                   (double)row->latency / 1000.0);
    }
    else {
        ap_rputs("<td data-l=\"checked\">-</td><td data-l=\"latency\">-</td>",
                 r);
    }
    ap_rprintf(r, "<td data-l=\"passes/fails\">%d/%d &middot; %d/%d</td>"
               "<td data-l=\"checks/failures\">%" APR_UINT64_T_FMT " / %"
               APR_UINT64_T_FMT "</td><td data-l=\"changes\">",
               row->passes, row->hcpasses, row->fails, row->hcfails,
               row->checks, row->failures);
    html_history(r, row, 1);
    ap_rprintf(r, "</td></tr>\n<tr class=\"r\"><td colspan=\"11\">%s",
               esc(r, row->reason));
    html_history(r, row, 0);
    ap_rputs("</td></tr>\n", r);
}

void bbs_html_send(request_rec *r, apr_array_header_t *rows, int refresh)
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
               BBS_VERSION, bbs_view_time(r->pool, now),
               refresh ? apr_psprintf(r->pool, ", refreshed every %d s",
                                      refresh)
                       : ", <a href=\"?refresh=5\">refresh every 5 s</a>");
    for (i = 0; i < rows->nelts; i = j) {
        const proxy_balancer *b = APR_ARRAY_IDX(rows, i, bbs_row_t).balancer;

        for (j = i; j < rows->nelts
                    && APR_ARRAY_IDX(rows, j, bbs_row_t).balancer == b;
             ++j) {
        }
        ap_rprintf(r, "<h2>%s <span class=\"g\">in %s</span></h2>\n",
                   esc(r, b->s->name),
                   esc(r, APR_ARRAY_IDX(rows, i, bbs_row_t).vhost));
        html_summary(r, rows, i, j);
        ap_rputs("<table><thead><tr><th>member</th><th>decision</th>"
                 "<th>state</th><th>HTTP</th><th>in rotation</th>"
                 "<th>flags</th><th>checked</th><th>latency</th>"
                 "<th>passes/fails</th><th>checks/failures</th>"
                 "<th>changes</th></tr></thead>\n<tbody>\n", r);
        for (; i < j; ++i) {
            html_member(r, &APR_ARRAY_IDX(rows, i, bbs_row_t), now);
        }
        ap_rputs("</tbody></table>\n", r);
    }
    if (!rows->nelts) {
        const apr_array_header_t *elsewhere = bbs_view_elsewhere(r);

        ap_rputs("<p>No balancer in this virtual host.", r);
        for (i = 0; i < elsewhere->nelts; ++i) {
            ap_rprintf(r, "%s%s", i ? ", " : " Balancers are defined in "
                                            "virtual host ",
                       esc(r, APR_ARRAY_IDX(elsewhere, i, const char *)));
        }
        if (elsewhere->nelts) {
            ap_rputs(": the bbstatus handler there shows them, and "
                     "/server-status shows every one.", r);
        }
        ap_rputs("</p>\n", r);
    }
    ap_rputs("</body></html>\n", r);
}
