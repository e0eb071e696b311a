/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * A session's route, found in a request as mod_proxy_balancer finds it
 * (its find_session_route and helpers are static, so they are followed
 * here): the glue asks before the balancer does whether the route names a
 * member the module holds in standby. Pure strings, so every form is
 * unit-tested without a server.
 */
#ifndef BBS_ROUTE_H
#define BBS_ROUTE_H

#include <apr_pools.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What of a request and of its balancer's settings the route comes from. */
typedef struct bbs_route_in_t {
    const char *url;         /* the URL the balancer is handed */
    const char *query;       /* NULL where the balancer does not look there */
    const char *cookie;      /* the Cookie header, or NULL */
    const char *sticky;      /* stickysession: the cookie's name */
    const char *sticky_path; /* stickysession: the URL parameter's name */
    int scolonsep;           /* scolonpathdelim: ';' ends a parameter too */
    char separator;          /* stickysessionsep; '\0': the whole value */
} bbs_route_in_t;

/* The value of parameter name=... in url, up to the next '?' or '&' (and
 * ';' with scolon); leading delimiters are skipped. NULL when there is
 * none or it is empty. */
const char *bbs_route_url_param(apr_pool_t *p, const char *url,
                                const char *name, int scolon);

/* The value of cookie name in a Cookie header, up to the next ';' or ','
 * (quotes and all); NULL when there is none. */
const char *bbs_route_cookie(apr_pool_t *p, const char *header,
                             const char *name);

/* The route: the URL parameter first, then the query's, then the cookie;
 * of that value what follows the first separator. NULL when there is
 * none; else *sticky is the name it was found under. */
const char *bbs_route_find(apr_pool_t *p, const bbs_route_in_t *in,
                           const char **sticky);

#ifdef __cplusplus
}
#endif

#endif /* BBS_ROUTE_H */
