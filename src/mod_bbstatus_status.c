/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * A section of mod_status's /server-status. With ?auto, one plain line per
 * BBSTATUS member, for scripts:
 *
 *   BBStatusMember: <balancer> <member> decision=<d> in_rotation=<0|1>
 *       in_rotation_sticky=<0|1|-> state=<state|-> http_status=<code|0>
 *       checks=<n> failures=<n> latency_ms=<ms> reason=<text>
 *       vhost=<name:port>
 *
 * (on one line), preceded by "BBStatusMembers: <count>". As mod_status's
 * scoreboard, it covers the whole server: every balancer of every virtual
 * host, one inherited from the main server once. Every text value
 * is percent-encoded: none contains a space or an '=', so a node that
 * reports a state such as "ERROR decision=route" cannot add a key.
 */
#include <string.h>

#include "apr_lib.h"
#include "apr_strings.h"
#include "http_protocol.h"
#include "mod_status.h"

#include "mod_bbstatus_view.h"
#include "mod_bbstatus_status.h"

/* Bytes kept as they are in ?auto values; the rest becomes %XX, so that
 * '+' stays a plus for a form decoder too. */
static const char *auto_value(apr_pool_t *p, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = apr_palloc(p, strlen(v) * 3 + 1), *o = out;

    for (; *v; ++v) {
        unsigned char c = (unsigned char)*v;

        if (apr_isalnum(c) || strchr("-._~:/()[],;'@!*$", c)) {
            *o++ = (char)c;
        }
        else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

int bbs_status_hook(request_rec *r, int flags)
{
    apr_array_header_t *rows = bbs_view_collect(r, BBS_VIEW_SERVER);
    int i, n = 0;

    for (i = 0; i < rows->nelts; ++i) {
        n += APR_ARRAY_IDX(rows, i, bbs_row_t).ours;
    }
    if (flags & AP_STATUS_SHORT) {
        ap_rprintf(r, "BBStatusMembers: %d\n", n);
    }
    else {
        ap_rprintf(r, "<hr />\n<h2>mod_bbstatus</h2>\n<p>%d BBSTATUS "
                   "member%s.</p>\n", n, n == 1 ? "" : "s");
        if (n) {
            ap_rputs("<table border=\"1\"><tr><th>virtual host</th>"
                     "<th>balancer</th>"
                     "<th>member</th><th>decision</th><th>in rotation</th>"
                     "<th>in rotation (sticky)</th>"
                     "<th>state</th><th>HTTP</th><th>checks / failures</th>"
                     "<th>reason</th></tr>\n", r);
        }
    }
    for (i = 0; i < rows->nelts; ++i) {
        const bbs_row_t *row = &APR_ARRAY_IDX(rows, i, bbs_row_t);
        const char *state = row->state ? row->state : "-";

        if (!row->ours) {
            continue;
        }
        if (flags & AP_STATUS_SHORT) {
            ap_rprintf(r, "BBStatusMember: %s %s decision=%s in_rotation=%d "
                       "in_rotation_sticky=%s state=%s http_status=%d "
                       "checks=%" APR_UINT64_T_FMT
                       " failures=%" APR_UINT64_T_FMT " latency_ms=%.1f "
                       "reason=%s vhost=%s\n",
                       auto_value(r->pool, row->balancer->s->name),
                       auto_value(r->pool, bbs_wname(row->worker)),
                       auto_value(r->pool, row->decision),
                       row->in_rotation,
                       row->in_rotation_sticky < 0
                           ? "-"
                           : row->in_rotation_sticky ? "1" : "0",
                       auto_value(r->pool, state),
                       row->http_status, row->checks, row->failures,
                       (double)row->latency / 1000.0,
                       auto_value(r->pool, row->reason),
                       auto_value(r->pool, row->vhost));
        }
        else {
            ap_rprintf(r, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td>"
                       "<td>%s</td>"
                       "<td>%s</td><td>%s</td><td>%d</td><td>%"
                       APR_UINT64_T_FMT " / %" APR_UINT64_T_FMT
                       "</td><td>%s</td></tr>\n",
                       ap_escape_html2(r->pool, row->vhost, 1),
                       ap_escape_html2(r->pool, row->balancer->s->name, 1),
                       ap_escape_html2(r->pool, bbs_wname(row->worker), 1),
                       row->decision,
                       row->in_rotation ? "yes" : "no",
                       row->in_rotation_sticky < 0
                           ? "-"
                           : row->in_rotation_sticky ? "yes" : "no",
                       ap_escape_html2(r->pool, state, 1), row->http_status,
                       row->checks, row->failures,
                       ap_escape_html2(r->pool, row->reason, 1));
        }
    }
    if (!(flags & AP_STATUS_SHORT) && n) {
        ap_rputs("</table>\n", r);
    }
    return OK;
}
