/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The view: one row per balancer member, as every output shows it,
 * gathered once per request for the handler (HTML, JSON, Prometheus) and
 * the server-status section (HTML, ?auto) alike (mod_bbstatus_view.c).
 * The outputs render rows; none of them works anything out again.
 */
#ifndef MOD_BBSTATUS_VIEW_H
#define MOD_BBSTATUS_VIEW_H

#include "mod_bbstatus_private.h"
#include "mod_bbstatus_shm.h"

typedef struct {
    proxy_balancer *balancer;
    proxy_worker *worker;
    const char *vhost; /* the virtual host the balancer is defined in */
    int ours;          /* hcmethod=BBSTATUS */
    int in_rotation;   /* the balancer would choose it now */
    int in_rotation_sticky; /* ... for a request whose route names it;
                             * -1: no request can name it */
    const char *flags; /* balancer-manager's words */
    const char *probe_url;
    apr_uint32_t latency_us; /* answer time the ramp compares, 0: none */

    /* What every output shows of a BBSTATUS member, worked out in one
     * function (mod_bbstatus_view.c, derive()) so that no two outputs can
     * word it differently; the outputs read nothing else of a member. The
     * fields of a check are 0 (or NULL) until the record holds one. */
    int checked;
    const char *decision; /* "pending" until checked; NULL: not ours */
    const char *state;    /* reported last; NULL when none */
    const char *reason;   /* explains decision */
    int http_status;
    const char *http_text; /* the status, else why none came (refused,
                            * timeout, ...); NULL for neither */
    apr_interval_time_t latency;
    apr_interval_time_t interval; /* between the last two checks */
    apr_time_t checked_at;
    apr_time_t changed_at;
    apr_uint64_t checks;
    apr_uint64_t failures;
    int passes, hcpasses, fails, hcfails; /* the worker's counts, now */
    apr_uint32_t changes_total;        /* since the record was made */
    apr_uint32_t changes;              /* entries of history[] */
    const bbs_change_t *history[BBS_HISTORY]; /* newest first, in rec */
    const char *warmup;   /* "warming, ..."; NULL when not warming up */
    double warm_share;    /* of its full share; 1 when not warming */
    double warm_seconds_left;
    int warm_held;        /* its answers hold the ramp back */

    /* what derive() reads */
    int has_record;
    bbs_record_t rec;    /* a whole copy, see bbs_shm_read() */
    bbs_shm_warm_t warm; /* BBStatusWarmup: share 0 when not warming */
} bbs_row_t;

/* Every member of every balancer of r's virtual host, in order, as
 * balancer-manager shows them (BBS_VIEW_VHOST); or of every virtual host
 * of the server, as mod_status's scoreboard does (BBS_VIEW_SERVER), a
 * balancer that virtual hosts inherit from the main server once. */
#define BBS_VIEW_VHOST 0
#define BBS_VIEW_SERVER 1
apr_array_header_t *bbs_view_collect(request_rec *r, int scope);
/* The virtual hosts other than r's that define a balancer: where to look
 * when r's has none. */
apr_array_header_t *bbs_view_elsewhere(request_rec *r);
/* How every output names a virtual host: "name:port", or "name" where
 * no port is set (the main server, <VirtualHost *>). */
const char *bbs_view_vhost(apr_pool_t *p, const server_rec *s);
/* RFC 3339 in UTC with milliseconds, as every format shows times. */
const char *bbs_view_time(apr_pool_t *p, apr_time_t t);

#endif /* MOD_BBSTATUS_VIEW_H */
