/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * One row per balancer member as the diagnostics show it, gathered once
 * per request for the handler and the server-status section alike
 * (mod_bbstatus_view.c).
 */
#ifndef MOD_BBSTATUS_VIEW_H
#define MOD_BBSTATUS_VIEW_H

#include "mod_bbstatus_private.h"
#include "mod_bbstatus_shm.h"

typedef struct {
    proxy_balancer *balancer;
    proxy_worker *worker;
    int ours;          /* hcmethod=BBSTATUS */
    int in_rotation;   /* the balancer would choose it now */
    int in_rotation_sticky; /* ... for a request whose route names it;
                             * -1: no request can name it */
    int has_record;
    apr_uint32_t slot_flags; /* BBS_SLOT_*: the decision as of now */
    const char *flags; /* balancer-manager's words */
    const char *probe_url;
    bbs_record_t rec;  /* a whole copy, see bbs_shm_read() */
} bbs_row;

/* Every member of every balancer of r's virtual host, in order. */
apr_array_header_t *bbs_view_collect(request_rec *r);
const char *bbs_view_decision(const bbs_row *row);
/* RFC 3339 in UTC with milliseconds, as every format shows times. */
const char *bbs_view_time(apr_pool_t *p, apr_time_t t);

#endif /* MOD_BBSTATUS_VIEW_H */
