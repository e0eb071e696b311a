/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The checker's lease: a small segment, made once by the parent and
 * inherited by every child, that outlives graceful restarts. The child
 * that renews it every tick checks; when it stops renewing (it exits, is
 * killed, or is shutting down), another child takes it over, whichever
 * generation it belongs to.
 */
#include <string.h>

#include "apr_atomic.h"
#include "apr_shm.h"

#include "bbs_lease.h"
#include "mod_bbstatus_lease.h"

#define LEASE_USERDATA "mod_bbstatus-lease"

/* The lease word (bbs_lease_word) and next to it the generation of its
 * holder. */
typedef struct {
    volatile apr_uint64_t lease;
    volatile apr_uint32_t lease_generation;
    apr_uint32_t generations; /* counted by the parent */
    char pad[48];
} header_t;

/* Kept in the process pool across generations. */
typedef struct {
    apr_shm_t *shm;
    header_t *header;
} segment_t;

/* Set in the parent before children fork; read-only afterwards. */
static segment_t *seg;
/* This generation's number in the lease's count (not httpd's
 * configuration generation, which flags.c uses). */
static apr_uint32_t lease_gen;

int bbs_lease_take(apr_uint32_t me, apr_time_t now, apr_interval_time_t ttl)
{
    apr_uint64_t cur;

    if (!seg) {
        return 0;
    }
    cur = bbs_atomic_read64(&seg->header->lease);
    if (!bbs_lease_may_take(cur,
                            apr_atomic_read32(&seg->header->lease_generation),
                            me, lease_gen, now, ttl)
        || bbs_atomic_cas64(&seg->header->lease, bbs_lease_word(me, now),
                            cur) != cur) {
        return 0;
    }
    if (bbs_lease_holder(cur) != me) {
        apr_atomic_set32(&seg->header->lease_generation, lease_gen);
    }
    return 1;
}

void bbs_lease_release(apr_uint32_t me)
{
    apr_uint64_t cur;

    if (!seg) {
        return;
    }
    cur = bbs_atomic_read64(&seg->header->lease);
    if (bbs_lease_holder(cur) == me) {
        bbs_atomic_cas64(&seg->header->lease, 0, cur);
    }
}

int bbs_lease_post_config(server_rec *s)
{
    apr_pool_t *ppool = s->process->pool;
    segment_t *sg = NULL;
    apr_status_t rv;

    apr_pool_userdata_get((void **)&sg, LEASE_USERDATA, ppool);
    if (!sg) {
        sg = apr_pcalloc(ppool, sizeof(*sg));
        rv = apr_shm_create(&sg->shm, sizeof(header_t), NULL, ppool);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                         BBSLOGNO(0008) "cannot create shared memory for the "
                         "checker's lease");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        sg->header = apr_shm_baseaddr_get(sg->shm);
        memset(sg->header, 0, sizeof(header_t));
        apr_pool_userdata_set(sg, LEASE_USERDATA, apr_pool_cleanup_null,
                              ppool);
    }
    seg = sg;
    lease_gen = ++sg->header->generations;
    return OK;
}
