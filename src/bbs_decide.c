/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <apr_lib.h>
#include <apr_strings.h>
#include <jansson.h>

#include "bbs_decide.h"
#include "bbs_keys.h"

struct bbs_stateset_t {
    int n;
    const char *const *names; /* upper case, no duplicates */
};

static const char *const default_route_names[] = {
    "STARTING", "FIRST_RUN", "RUNNING", "MAINTENANCE"
};
static const char *const default_standby_names[] = {
    "STARTING", "MAINTENANCE"
};
static const bbs_stateset_t default_route = { 4, default_route_names };
static const bbs_stateset_t default_standby = { 2, default_standby_names };
static const bbs_stateset_t empty_set = { 0, NULL };

const bbs_stateset_t *bbs_stateset_default_route(void)
{
    return &default_route;
}

const bbs_stateset_t *bbs_stateset_default_standby(void)
{
    return &default_standby;
}

const bbs_stateset_t *bbs_stateset_empty(void)
{
    return &empty_set;
}

int bbs_stateset_has(const bbs_stateset_t *set, const char *state)
{
    int i;

    for (i = 0; i < set->n; ++i) {
        if (!strcasecmp(set->names[i], state)) {
            return 1;
        }
    }
    return 0;
}

int bbs_stateset_count(const bbs_stateset_t *set)
{
    return set->n;
}

bbs_stateset_t *bbs_stateset_make(apr_pool_t *p, int argc,
                                  const char *const *argv, const char **err)
{
    bbs_stateset_t *set;
    const char **names;
    int i;

    if (argc <= 0) {
        *err = "needs at least one state name";
        return NULL;
    }
    names = apr_pcalloc(p, sizeof(*names) * (apr_size_t)argc);
    set = apr_pcalloc(p, sizeof(*set));
    set->names = names;
    for (i = 0; i < argc; ++i) {
        const char *c;
        char *up, *u;
        apr_size_t len = strlen(argv[i]);

        if (len == 0) {
            *err = "an empty state name is not allowed";
            return NULL;
        }
        if (len >= BBS_STATE_LEN) {
            *err = apr_psprintf(p, "state name '%.20s...' is longer than %d "
                                "characters", argv[i], BBS_STATE_LEN - 1);
            return NULL;
        }
        for (c = argv[i]; *c; ++c) {
            if (!apr_isalnum(*c) && *c != '_') {
                *err = apr_psprintf(p, "'%s' is not a state name (only "
                                    "A-Z a-z 0-9 _)", argv[i]);
                return NULL;
            }
        }
        up = apr_pstrdup(p, argv[i]);
        for (u = up; *u; ++u) {
            *u = (char)apr_toupper(*u);
        }
        if (!bbs_stateset_has(set, up)) {
            names[set->n++] = up;
        }
    }
    return set;
}

int bbs_stateset_same(const bbs_stateset_t *a, const bbs_stateset_t *b)
{
    int i;

    if (a->n != b->n) {
        return 0;
    }
    /* names are unique within a set: same count and a within b is enough */
    for (i = 0; i < a->n; ++i) {
        if (!bbs_stateset_has(b, a->names[i])) {
            return 0;
        }
    }
    return 1;
}

const char *bbs_stateset_str(const bbs_stateset_t *set, apr_pool_t *p)
{
    const char *s = NULL;
    int i;

    if (set->n == 0) {
        return "none";
    }
    for (i = 0; i < set->n; ++i) {
        s = s ? apr_pstrcat(p, s, " ", set->names[i], NULL) : set->names[i];
    }
    return s;
}

const char *bbs_parse_size(const char *arg, apr_size_t *out)
{
    char *end;
    apr_int64_t n;

    if (!arg || !*arg || !apr_isdigit(*arg)) {
        return "must be a number of bytes (e.g. 8192, 16k, 1M)";
    }
    n = apr_strtoi64(arg, &end, 10);
    if (n < 0 || n > BBS_MAX_BODY_LIMIT) {
        return "must be between 1 byte and 1M";
    }
    if (*end == 'k' || *end == 'K') {
        n *= 1024;
        ++end;
    }
    else if (*end == 'm' || *end == 'M') {
        n *= 1024 * 1024;
        ++end;
    }
    if (*end) {
        return "must be a number of bytes (e.g. 8192, 16k, 1M)";
    }
    if (n < 1 || n > BBS_MAX_BODY_LIMIT) {
        return "must be between 1 byte and 1M";
    }
    *out = (apr_size_t)n;
    return NULL;
}

void bbs_rules_default(bbs_rules_t *rules)
{
    rules->route = &default_route;
    rules->standby = &default_standby;
    rules->max_body = BBS_MAX_BODY_DEFAULT;
}

const char *bbs_verdict_name(bbs_verdict_e v)
{
    switch (v) {
    case BBS_ROUTE:
        return BBS_DECISION_ROUTE;
    case BBS_BLOCK:
        return BBS_DECISION_BLOCK;
    case BBS_FAIL:
        break;
    }
    return "fail";
}

const char *bbs_transport_name(bbs_transport_e t)
{
    switch (t) {
    case BBS_TX_OK:
        return "answered";
    case BBS_TX_REFUSED:
        return "connection refused";
    case BBS_TX_TIMEOUT:
        return "timed out";
    case BBS_TX_RESET:
        return "connection reset";
    case BBS_TX_EMPTY:
        return "empty reply";
    case BBS_TX_TLS:
        return "TLS handshake failed";
    case BBS_TX_DNS:
        return "host name does not resolve";
    case BBS_TX_PROTOCOL:
        return "not an HTTP/1.x response";
    case BBS_TX_BODY:
        return "body could not be read";
    case BBS_TX_OTHER:
        break;
    }
    return "probe failed";
}

/* Copies what a node sent into a fixed buffer an operator will read:
 * printable ASCII only, so a log line or a terminal is never garbled, and
 * cut with a visible mark. Output escaping (HTML, JSON) happens later. */
static void copy_printable(char *dst, apr_size_t cap, const char *src,
                           apr_size_t len)
{
    apr_size_t i, n = len < cap - 1 ? len : cap - 1;

    for (i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = '\0';
    if (len > cap - 1 && cap > 4) {
        memcpy(dst + cap - 4, "...", 4);
    }
}

/* jansson's error texts quote the bytes they stumbled on, which may be
 * anything a node sent: the finished reason is made printable as a whole. */
static void set_reason(bbs_result_t *out, bbs_verdict_e v, const char *fmt,
                       ...)
{
    va_list ap;
    char *c;

    out->verdict = v;
    va_start(ap, fmt);
    vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
    va_end(ap);
    for (c = out->reason; *c; ++c) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) {
            *c = '?';
        }
    }
}

static int has_media_type(const char *ct, const char *type)
{
    apr_size_t n = strlen(type);

    while (*ct == ' ' || *ct == '\t') {
        ++ct;
    }
    return !strncasecmp(ct, type, n)
           && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static const char *json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

static void decide_state(const bbs_rules_t *rules, const char *state,
                         apr_size_t len, int http_status, bbs_result_t *out)
{
    out->has_state = 1;
    copy_printable(out->state, sizeof(out->state), state, len);
    /* A state longer than any configurable name, or with a NUL inside,
     * cannot be in a set; the cut copy must not match by accident. */
    if (len < BBS_STATE_LEN && strlen(state) == len
        && bbs_stateset_has(rules->route, state)) {
        if (bbs_stateset_has(rules->standby, state)) {
            out->standby = 1;
            set_reason(out, BBS_ROUTE, "state %s (HTTP %d) is in "
                       "BBStatusStandby: used while no member of the "
                       "balancer is in a better state", out->state,
                       http_status);
        }
        else {
            set_reason(out, BBS_ROUTE, "state %s (HTTP %d) is in "
                       "BBStatusRoute", out->state, http_status);
        }
    }
    else {
        set_reason(out, BBS_BLOCK, "state %s (HTTP %d) is not in "
                   "BBStatusRoute", out->state, http_status);
    }
}

/* Whether a body is exactly "OK", whitespace around it allowed: what
 * Confluence's Synchrony answers on /synchrony/heartbeat, a member checked
 * at the wrong URL or with the wrong method. */
static int is_heartbeat_ok(const char *body, apr_size_t len)
{
    while (len && apr_isspace(*body)) {
        ++body;
        --len;
    }
    while (len && apr_isspace(body[len - 1])) {
        --len;
    }
    return len == 2 && body[0] == 'O' && body[1] == 'K';
}

/* The answers that fail before their body is parsed: 1 when out says
 * why. */
static int refuse_answer(const bbs_rules_t *rules, const bbs_answer_t *a,
                         bbs_result_t *out)
{
    apr_size_t len = a->body ? a->body_len : 0;
    int code = a->http_status;

    if (a->transport != BBS_TX_OK) {
        if (a->detail && *a->detail) {
            char detail[BBS_REASON_LEN];
            copy_printable(detail, sizeof(detail), a->detail,
                           strlen(a->detail));
            set_reason(out, BBS_FAIL, "%s: %s",
                       bbs_transport_name(a->transport), detail);
        }
        else {
            set_reason(out, BBS_FAIL, "%s", bbs_transport_name(a->transport));
        }
        return 1;
    }
    if (code >= 300 && code < 400) {
        char where[96];
        const char *loc = a->location ? a->location : "";
        copy_printable(where, sizeof(where), loc, strlen(loc));
        set_reason(out, BBS_FAIL, "redirect (HTTP %d) to '%s' is not "
                   "followed", code, where);
        return 1;
    }
    /* Atlassian nodes answer /status with 2xx or 5xx; anything else is a
     * proxy, a login wall or a wrong hcuri speaking, whatever its body. */
    if (code < 200 || (code >= 400 && code < 500) || code > 599) {
        set_reason(out, BBS_FAIL, "HTTP %d is not a status answer", code);
        return 1;
    }
    if (a->body_truncated || len > rules->max_body) {
        set_reason(out, BBS_FAIL, "body larger than %" APR_SIZE_T_FMT
                   " bytes (BBStatusMaxBody)", rules->max_body);
        return 1;
    }
    if (a->content_encoding && *a->content_encoding
        && !has_media_type(a->content_encoding, "identity")) {
        char enc[32];
        copy_printable(enc, sizeof(enc), a->content_encoding,
                       strlen(a->content_encoding));
        set_reason(out, BBS_FAIL, "body is %s-encoded (HTTP %d), which was "
                   "not asked for", enc, code);
        return 1;
    }
    if (a->content_type && has_media_type(a->content_type, "text/html")) {
        set_reason(out, BBS_FAIL, "HTML page (HTTP %d), not a status answer",
                   code);
        return 1;
    }
    if (len == 0) {
        set_reason(out, BBS_FAIL, "empty body (HTTP %d)", code);
        return 1;
    }
    return 0;
}

void bbs_decide(const bbs_rules_t *rules, const bbs_answer_t *a,
                bbs_result_t *out)
{
    const char *body = a->body ? a->body : "";
    apr_size_t len = a->body ? a->body_len : 0;
    int code = a->http_status;
    json_error_t jerr;
    json_t *root, *state;

    memset(out, 0, sizeof(*out));
    out->verdict = BBS_FAIL;
    if (refuse_answer(rules, a, out)) {
        return;
    }
    /* RFC 8259 8.1 lets a parser ignore a byte order mark; jansson does
     * not, and a node behind a misconfigured filter may send one. */
    if (len >= 3 && !memcmp(body, "\xEF\xBB\xBF", 3)) {
        body += 3;
        len -= 3;
    }
    /* Duplicate keys are refused rather than merged: {"state":"STOPPING",
     * "state":"RUNNING"} has no trustworthy answer. Nesting is bounded by
     * jansson's JSON_PARSER_MAX_DEPTH, so deep input cannot exhaust the
     * stack of the checking thread. */
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root && is_heartbeat_ok(body, len)) {
        set_reason(out, BBS_FAIL, "body \"OK\" (HTTP %d) is a heartbeat, "
                   "not a /status answer: check it with hcmethod=GET and "
                   "hcexpr (see README)", code);
        return;
    }
    if (!root) {
        set_reason(out, BBS_FAIL, "body is not JSON (HTTP %d): %s at byte %d",
                   code, jerr.text, jerr.position);
        return;
    }
    if (!json_is_object(root)) {
        set_reason(out, BBS_FAIL, "JSON is %s, not an object (HTTP %d)",
                   json_type_name(root), code);
    }
    else if (!(state = json_object_get(root, BBS_KEY_STATE))) {
        set_reason(out, BBS_FAIL, "JSON has no \"state\" (HTTP %d)", code);
    }
    else if (!json_is_string(state)) {
        set_reason(out, BBS_FAIL, "\"state\" is %s, not a string (HTTP %d)",
                   json_type_name(state), code);
    }
    else {
        decide_state(rules, json_string_value(state),
                     json_string_length(state), code, out);
    }
    json_decref(root);
}
