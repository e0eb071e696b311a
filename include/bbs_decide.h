/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The decision core: what a node answered on /status (or that it did not
 * answer) becomes route, block or fail, with the state and a reason an
 * operator can read. No httpd headers here: the core is unit-tested and
 * fuzzed without a server.
 */
#ifndef BBS_DECIDE_H
#define BBS_DECIDE_H

#include <apr_pools.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Room for a state in fixed-size records (shared memory, results). Longer
 * states are cut and marked; they can never be in a route set anyway. */
#define BBS_STATE_LEN 64
#define BBS_REASON_LEN 200

#define BBS_MAX_BODY_DEFAULT 8192
#define BBS_MAX_BODY_LIMIT (1024 * 1024)

typedef enum {
    BBS_ROUTE = 0, /* a state the route set accepts */
    BBS_BLOCK,     /* a well-formed state outside the route set */
    BBS_FAIL       /* nothing trustworthy was learned */
} bbs_verdict_e;

/* How a probe ended when no HTTP response came back. */
typedef enum {
    BBS_TX_OK = 0,   /* a response (status line and headers) was read */
    BBS_TX_REFUSED,
    BBS_TX_TIMEOUT,
    BBS_TX_RESET,
    BBS_TX_EMPTY,    /* connection closed before a status line */
    BBS_TX_TLS,
    BBS_TX_DNS,
    BBS_TX_PROTOCOL, /* something came back, but not HTTP/1.x */
    BBS_TX_BODY,     /* headers fine, body unreadable (bad chunking, cut) */
    BBS_TX_OTHER
} bbs_transport_e;

typedef struct bbs_answer_t {
    bbs_transport_e transport;
    const char *detail;       /* optional words on a transport failure */
    int http_status;          /* meaningful when transport == BBS_TX_OK */
    const char *content_type; /* may be NULL */
    const char *content_encoding; /* may be NULL */
    const char *location;     /* may be NULL; shown for redirects */
    const char *body;         /* not NUL-terminated, may hold NUL bytes */
    apr_size_t body_len;
    int body_truncated;       /* the reader stopped at the limit: more came */
} bbs_answer_t;

typedef struct bbs_result_t {
    bbs_verdict_e verdict;
    int has_state;
    int standby;            /* route, but only while no better member is */
    char state[BBS_STATE_LEN];
    char reason[BBS_REASON_LEN];
} bbs_result_t;

/* A set of state names, compared case-insensitively. */
typedef struct bbs_stateset_t bbs_stateset_t;

typedef struct bbs_rules_t {
    const bbs_stateset_t *route;
    const bbs_stateset_t *standby; /* subset of route that only stands by */
    apr_size_t max_body;
} bbs_rules_t;

/* The default route set: STARTING FIRST_RUN RUNNING MAINTENANCE. */
const bbs_stateset_t *bbs_stateset_default_route(void);
/* The default standby set: STARTING MAINTENANCE. */
const bbs_stateset_t *bbs_stateset_default_standby(void);
/* The empty set (standby turned off). */
const bbs_stateset_t *bbs_stateset_empty(void);

/* Builds a set from names; on a bad list returns NULL and points *err at a
 * message that names the offending value (the caller adds the directive). */
bbs_stateset_t *bbs_stateset_make(apr_pool_t *p, int argc,
                                  const char *const *argv, const char **err);
int bbs_stateset_has(const bbs_stateset_t *set, const char *state);
int bbs_stateset_count(const bbs_stateset_t *set);
/* Whether two sets hold the same names, in whatever order. */
int bbs_stateset_same(const bbs_stateset_t *a, const bbs_stateset_t *b);
/* Names joined by single spaces, upper case; "none" for an empty set. */
const char *bbs_stateset_str(const bbs_stateset_t *set, apr_pool_t *p);

/* Parses a body limit ("8192", "16k", "1M"): 1 byte to 1 MiB. */
const char *bbs_parse_size(const char *arg, apr_size_t *out);

void bbs_rules_default(bbs_rules_t *rules);

/* The whole decision. Never allocates from a pool and never fails: every
 * input, however broken, ends in a verdict with a reason. */
void bbs_decide(const bbs_rules_t *rules, const bbs_answer_t *answer,
                bbs_result_t *out);

const char *bbs_verdict_name(bbs_verdict_e v);
const char *bbs_transport_name(bbs_transport_e t);

#ifdef __cplusplus
}
#endif
#endif /* BBS_DECIDE_H */
