/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* The directives, the settings of a balancer, and walking the balancers
 * and members of every server (mod_bbstatus_config.c). */
#ifndef MOD_BBSTATUS_CONFIG_H
#define MOD_BBSTATUS_CONFIG_H

#include "bbs_warmup.h"
#include "mod_bbstatus_private.h"

#define BBS_THREADS_DEFAULT 16
#define BBS_TIMEOUT_DEFAULT apr_time_from_sec(5)
#define BBS_REPROBE_DEFAULT apr_time_from_msec(250)
#define BBS_WARM_FLOOR_DEFAULT 50 /* thousandths: 5% of the full share */

/* Per directory: server config, virtual host and <Proxy balancer://...>
 * sections; the innermost wins. */
typedef struct {
    const bbs_stateset_t *route;
    const bbs_stateset_t *standby;
    apr_size_t max_body;          /* 0: unset */
    apr_interval_time_t timeout;  /* BBS_UNSET: unset */
    apr_interval_time_t reprobe;
    apr_interval_time_t fast_interval; /* 0: off */
    int fast_block;
    int panic;
    int fast_interval_set;
    int retry;                    /* BBStatusRetry; BBS_UNSET: on */
    apr_interval_time_t warmup;   /* BBStatusWarmup; BBS_UNSET: off */
    unsigned warm_floor;          /* its floor, thousandths */
} bbs_dir_conf_t;

/* Per server process: the thread pool is one for all balancers. */
typedef struct {
    int threads;
} bbs_server_conf_t;

/* Settings in force for one balancer, after merging. */
typedef struct {
    bbs_rules_t rules;
    apr_interval_time_t timeout;
    apr_interval_time_t reprobe;
    apr_interval_time_t fast_interval;
    int fast_block;
    int panic;
    bbs_warmup_conf_t warmup;
} bbs_settings_t;

extern const command_rec bbs_cmds[];
void *bbs_create_dir_conf(apr_pool_t *p, char *dir);
void *bbs_merge_dir_conf(apr_pool_t *p, void *base, void *add);
void *bbs_create_server_conf(apr_pool_t *p, server_rec *s);
ap_conf_vector_t *bbs_balancer_dir_config(apr_pool_t *p, server_rec *s,
                                          proxy_balancer *b);
void bbs_settings_for(bbs_settings_t *out, ap_conf_vector_t *dir_config);

/* Calls fn for every balancer of every server; a virtual host's copies of
 * the main server's balancers share their members array and workers. */
typedef void bbs_balancer_fn(server_rec *s, proxy_server_conf *conf,
                             proxy_balancer *b, void *baton);
void bbs_each_balancer(server_rec *s, bbs_balancer_fn *fn, void *baton);
/* The balancer a request of this server runs through for a member. A
 * member's own pointer (worker->balancer) names the record its <Proxy>
 * section was read into; a virtual host runs on the copy mod_proxy merges
 * into its configuration, whose shared settings (maxattempts, nofailover,
 * stickysession, balancer-manager edits) live elsewhere. */
proxy_balancer *bbs_balancer_of(const proxy_server_conf *conf,
                                const proxy_worker *w);
/* Members a balancer may ever hold: its members, or more with growth=. */
int bbs_member_slots(const proxy_balancer *b);
/* Calls fn for every member of every balancer of every server. */
typedef void bbs_member_fn(proxy_balancer *b, proxy_worker *w, void *baton);
void bbs_each_member(server_rec *s, bbs_member_fn *fn, void *baton);

#endif /* MOD_BBSTATUS_CONFIG_H */
