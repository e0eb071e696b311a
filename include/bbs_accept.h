/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Accept negotiation for the diagnostics (RFC 9110, 12.5.1), kept out of
 * the handler so that every rule README promises is unit-tested without a
 * server.
 */
#ifndef BBS_ACCEPT_H
#define BBS_ACCEPT_H

#include <apr_pools.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The weight in thousandths that the Accept header value gives type/sub:
 * that of the most specific range matching it, 0 when none does. A range
 * with a malformed weight counts as absent. Copies accept into p. */
int bbs_accept_weight(apr_pool_t *p, const char *accept, const char *type,
                      const char *sub);

/* Whether accept gives application/json a higher weight than text/html;
 * 0 on a tie, when neither is acceptable and when accept is NULL: HTML is
 * what a client gets unless it asked for JSON. */
int bbs_accept_prefers_json(apr_pool_t *p, const char *accept);

#ifdef __cplusplus
}
#endif

#endif /* BBS_ACCEPT_H */
