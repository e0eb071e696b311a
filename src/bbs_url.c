/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include <string.h>

#include <apr_strings.h>

#include "bbs_url.h"

const char *bbs_url_probe_path(apr_pool_t *p, const char *base,
                               const char *hcuri)
{
    const char *tail = hcuri && *hcuri ? hcuri : "status";
    apr_size_t n = base ? strlen(base) : 0;

    /* BalancerMember http://h/jira/ and hcuri=/status are both usual:
     * no double slash, which some servers answer with a 404 */
    while (n > 0 && base[n - 1] == '/') {
        --n;
    }
    while (*tail == '/') {
        ++tail;
    }
    return apr_psprintf(p, "%.*s/%s", (int)n, n ? base : "", tail);
}

const char *bbs_url_authority(apr_pool_t *p, const char *host, int port)
{
    /* hostname_ex holds an IPv6 literal without its brackets */
    return apr_psprintf(p, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                        port);
}
