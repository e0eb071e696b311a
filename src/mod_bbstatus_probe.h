/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* One probe of a member's status page (mod_bbstatus_probe.c). */
#ifndef MOD_BBSTATUS_PROBE_H
#define MOD_BBSTATUS_PROBE_H

#include "apr_thread_proc.h"

#include "mod_bbstatus_private.h"
#include "mod_bbstatus_config.h"

typedef struct {
    bbs_answer_t answer;
    apr_interval_time_t latency;
} bbs_probe_result_t;

const char *bbs_probe_url(apr_pool_t *p, const proxy_worker *w);
/* The request path: "/base/status" with no double slash. */
const char *bbs_probe_path(apr_pool_t *p, const proxy_worker *w);
void bbs_probe_run(proxy_worker *hc, const char *path, server_rec *s,
                   ap_conf_vector_t *dir_config, const bbs_settings_t *set,
                   apr_pool_t *p, apr_thread_t *thread,
                   bbs_probe_result_t *out);
proxy_worker *bbs_probe_worker_create(proxy_worker *w, server_rec *s,
                                      const bbs_settings_t *set,
                                      apr_pool_t *p);

#endif /* MOD_BBSTATUS_PROBE_H */
