/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* The directives, the settings of a balancer, and walking the balancers
 * and members of every server (mod_bbstatus_config.c). */
#ifndef MOD_BBSTATUS_CONFIG_H
#define MOD_BBSTATUS_CONFIG_H

#include "bbs_warmup.h"
#include "mod_bbstatus_private.h"

/* Per directory: server config, virtual host and <Proxy balancer://...>
 * sections; the innermost wins. What no directive set is NULL (the state
 * sets), 0 (the size) or BBS_UNSET (the rest, where 0 means off); the
 * defaults for all of it are in one place, mod_bbstatus_config.c's
 * defconf. */
typedef struct {
    const bbs_stateset_t *route;   /* BBStatusRoute */
    const bbs_stateset_t *standby; /* BBStatusStandby */
    apr_size_t max_body;           /* BBStatusMaxBody */
    apr_interval_time_t timeout;   /* BBStatusTimeout */
    apr_interval_time_t reprobe;   /* BBStatusReprobe */
    apr_interval_time_t fast_interval; /* BBStatusFastInterval, 0: off */
    int fast_block;                /* BBStatusFastBlock */
    int panic;                     /* BBStatusPanic */
    int retry;                     /* BBStatusRetry */
    apr_interval_time_t warmup;    /* BBStatusWarmup, 0: off */
    unsigned warm_floor;           /* its floor, thousandths */
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
/* BBStatusRetry and BBStatusWarmup's duration (0: off) where a request
 * runs, c its per-directory configuration (NULL: none). */
int bbs_retry_on(const bbs_dir_conf_t *c);
apr_interval_time_t bbs_warmup_of(const bbs_dir_conf_t *c);

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
