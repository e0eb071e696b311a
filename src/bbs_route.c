/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Each rule below is mod_proxy_balancer's, quirks included: a route this
 * module reads differently from the balancer would send the session
 * elsewhere than the balancer would.
 */
#include <string.h>

#include <apr_lib.h>
#include <apr_strings.h>

#include "bbs_route.h"

const char *bbs_route_url_param(apr_pool_t *p, const char *url,
                                const char *name, int scolon)
{
    const char *delims = scolon ? ";?&" : "?&";
    apr_size_t n = strlen(name);
    const char *at;

    if (!n) {
        return NULL;
    }
    for (at = strstr(url, name); at; at = strstr(at + 1, name)) {
        const char *v = at + n;
        if (v[0] != '=' || !v[1]) {
            continue;
        }
        /* leading delimiters are skipped, as strtok does */
        v += 1 + strspn(v + 1, delims);
        return *v ? apr_pstrmemdup(p, v, strcspn(v, delims)) : NULL;
    }
    return NULL;
}

const char *bbs_route_cookie(apr_pool_t *p, const char *header,
                             const char *name)
{
    apr_size_t n = strlen(name);
    const char *at;

    if (!header || !n) {
        return NULL;
    }
    for (at = strstr(header, name); at; at = strstr(at + 1, name)) {
        if (at > header && at[-1] != ';' && at[-1] != ','
            && !apr_isspace(at[-1])) {
            continue;
        }
        /* the search goes on after what was looked at, not after the
         * name alone: "a a=1" has no cookie a */
        at += n;
        while (apr_isspace(*at)) {
            ++at;
        }
        if (!*at) {
            return NULL;
        }
        if (*at++ != '=') {
            continue;
        }
        if (!*at) {
            return NULL;
        }
        return apr_pstrmemdup(p, at, strcspn(at, ";,"));
    }
    return NULL;
}

const char *bbs_route_find(apr_pool_t *p, const bbs_route_in_t *in,
                           const char **sticky)
{
    const char *v = bbs_route_url_param(p, in->url, in->sticky_path,
                                        in->scolonsep);

    if (!v && in->query) {
        v = bbs_route_url_param(p, in->query, in->sticky_path,
                                in->scolonsep);
    }
    *sticky = in->sticky_path;
    if (!v) {
        v = bbs_route_cookie(p, in->cookie, in->sticky);
        *sticky = in->sticky;
    }
    /* a value without the separator has no route, and the cookie is not
     * tried then: the balancer stops there too */
    if (v && in->separator) {
        v = strchr(v, in->separator);
        v = v ? v + 1 : NULL;
    }
    return v && *v ? v : NULL;
}
