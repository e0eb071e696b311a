/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "bbs_head.h"

const char *bbs_head_not_http1(apr_pool_t *p, const char *got, apr_size_t n)
{
    char shown[sizeof(BBS_HEAD_PREFIX)];
    apr_size_t i;

    if (n > sizeof(BBS_HEAD_PREFIX) - 1) {
        n = sizeof(BBS_HEAD_PREFIX) - 1;
    }
    if (!memcmp(got, BBS_HEAD_PREFIX, n)) {
        return NULL;
    }
    /* an HTTP/0.9 body or garbage: shown raw it could carry control
     * characters into logs and pages */
    for (i = 0; i < n; ++i) {
        shown[i] = apr_isprint(got[i]) ? got[i] : '?';
    }
    shown[n] = '\0';
    return apr_psprintf(p, "it begins '%s'", shown);
}

int bbs_head_status(const char *line, apr_size_t len)
{
    /* Tomcat sends "HTTP/1.1 200 " with an empty reason phrase; some
     * servers none at all: both are a status line */
    if (len < 12 || strncmp(line, BBS_HEAD_PREFIX, 7) || line[8] != ' '
        || !apr_isdigit(line[9]) || !apr_isdigit(line[10])
        || !apr_isdigit(line[11]) || (len > 12 && line[12] != ' ')) {
        return -1;
    }
    return atoi(line + 9);
}

int bbs_head_field(char *line, char **value)
{
    char *colon = strchr(line, ':'), *v, *end;

    if (!colon || colon == line) {
        return 0;
    }
    *colon = '\0';
    for (v = colon + 1; apr_isspace(*v); ++v) {
    }
    for (end = v + strlen(v); end > v && apr_isspace(end[-1]); --end) {
    }
    *end = '\0';
    *value = v;
    return 1;
}

int bbs_head_body_wanted(int status)
{
    return status >= 200 && status != 204 && status != 304
           && (status < 300 || status >= 400);
}
