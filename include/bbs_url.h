/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Where a member's probe goes, from the parts of its URL that mod_proxy
 * parsed: the path of /status under the member's own path, and host:port
 * as a Host header and a URL say it.
 */
#ifndef BBS_URL_H
#define BBS_URL_H

#include <apr_pools.h>

#ifdef __cplusplus
extern "C" {
#endif

/* base (the member URL's path, may be NULL) without its trailing slashes,
 * one '/', then hcuri (NULL or "" for "status") without its leading
 * ones: a member at http://h/jira/ is probed at /jira/status. */
const char *bbs_url_probe_path(apr_pool_t *p, const char *base,
                               const char *hcuri);

/* host:port, an IPv6 address in brackets. */
const char *bbs_url_authority(apr_pool_t *p, const char *host, int port);

#ifdef __cplusplus
}
#endif

#endif /* BBS_URL_H */
