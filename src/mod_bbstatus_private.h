/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * What the glue files share. Only this header and the glue include httpd;
 * the core (bbs_*.c) stays free of it.
 */
#ifndef MOD_BBSTATUS_PRIVATE_H
#define MOD_BBSTATUS_PRIVATE_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "mod_proxy.h"

#include "mod_bbstatus_compat.h"

#include "bbs_decide.h"
#include "bbs_keys.h"
#include "bbs_policy.h"

extern module AP_MODULE_DECLARE_DATA bbstatus_module;
APLOG_USE_MODULE(bbstatus);

/* Unset markers for merged configuration. */
#define BBS_UNSET (-1)

#define BBS_THREADS_DEFAULT 16
#define BBS_TIMEOUT_DEFAULT apr_time_from_sec(5)
#define BBS_REPROBE_DEFAULT apr_time_from_msec(250)

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
} bbs_dir_conf;

/* Per server process: the thread pool is one for all balancers. */
typedef struct {
    int threads;
} bbs_server_conf;

/* Settings in force for one balancer, after merging. */
typedef struct {
    bbs_rules_t rules;
    apr_interval_time_t timeout;
    apr_interval_time_t reprobe;
    apr_interval_time_t fast_interval;
    int fast_block;
    int panic;
} bbs_settings;

extern const command_rec bbs_cmds[];
void *bbs_create_dir_conf(apr_pool_t *p, char *dir);
void *bbs_merge_dir_conf(apr_pool_t *p, void *base, void *add);
void *bbs_create_server_conf(apr_pool_t *p, server_rec *s);
ap_conf_vector_t *bbs_balancer_dir_config(apr_pool_t *p, server_rec *s,
                                          proxy_balancer *b);
void bbs_settings_for(bbs_settings *out, ap_conf_vector_t *dir_config);
/* Refuses a balancer shared by servers that give it different settings. */
int bbs_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                     server_rec *s);

/* Calls fn for every balancer of every server; a virtual host's copies of
 * the main server's balancers share their members array and workers. */
typedef void bbs_balancer_fn(server_rec *s, proxy_server_conf *conf,
                             proxy_balancer *b, void *baton);
void bbs_each_balancer(server_rec *s, bbs_balancer_fn *fn, void *baton);
/* Calls fn for every member of every balancer of every server. */
typedef void bbs_member_fn(proxy_balancer *b, proxy_worker *w, void *baton);
void bbs_each_member(server_rec *s, bbs_member_fn *fn, void *baton);

/* The hcmethod row the module claims (mod_bbstatus_method.c). */
int bbs_method_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp);
int bbs_method_is(const proxy_worker *w);
const char *bbs_method_requirements(void);
void bbs_method_park_all(server_rec *s);
/* Only re-parks BBSTATUS members: cheap enough for every child's tick. */
void bbs_method_keep_parked(server_rec *s);
typedef struct bbs_slot_t bbs_slot_t;
void bbs_method_park(proxy_worker *w, bbs_slot_t *slot, apr_time_t now);
void bbs_method_child_init(apr_pool_t *p, server_rec *s);

/* Shared records (mod_bbstatus_shm.c). */
#define BBS_HISTORY 8
#define BBS_KEY_LEN 256
#define BBS_URL_LEN 256

typedef struct {
    apr_time_t at;
    int from;                 /* bbs_decision_e */
    int to;
    char state[BBS_STATE_LEN];
    char reason[BBS_REASON_LEN];
} bbs_change_t;

/* One member's record: written by the check that ran last, read by every
 * child. The copy below is what readers get, whole or not at all. */
typedef struct {
    char probe_url[BBS_URL_LEN];
    int decision;             /* bbs_decision_e */
    int verdict;              /* bbs_verdict_e of the last check */
    int has_state;
    int http_status;          /* 0: no response */
    int transport;            /* bbs_transport_e */
    int panic;
    char state[BBS_STATE_LEN];
    char reason[BBS_REASON_LEN];
    apr_time_t checked_at;
    apr_time_t changed_at;
    apr_interval_time_t latency;
    apr_interval_time_t last_interval; /* between the last two checks */
    apr_uint64_t checks;
    apr_uint64_t failures;
    apr_uint32_t history_len;  /* changes recorded, ever */
    bbs_change_t history[BBS_HISTORY]; /* ring, newest at (len-1)%N */
} bbs_record_t;

int bbs_shm_post_config(apr_pool_t *pconf, server_rec *s);
/* Finds the slot of a balancer's member, or claims a free one
 * (create != 0); NULL when there is none (create: the table is full). */
bbs_slot_t *bbs_shm_member(const proxy_balancer *b, const proxy_worker *w,
                           int create);
void bbs_shm_write(bbs_slot_t *slot, const bbs_record_t *rec);
/* 1 and a whole copy, or 0 when no consistent copy could be had. */
int bbs_shm_read(bbs_slot_t *slot, bbs_record_t *rec);
/* Flags shared between children next to the record. */
/* 1 when the flag was not up before: the caller wakes the checker. */
int bbs_shm_request_probe(bbs_slot_t *slot);
int bbs_shm_take_probe_request(bbs_slot_t *slot);
/* Flags kept next to a record, each owned by one writer. */
#define BBS_SLOT_PARKED 0x1   /* parked here, away from mod_proxy_hcheck */
#define BBS_SLOT_STANDBY 0x2  /* hot standby set here, not by an admin */
#define BBS_SLOT_PANIC 0x4    /* the member's balancer is in panic */
#define BBS_SLOT_DOWN 0x8     /* the checks say out, panic or not */
#define BBS_SLOT_FAILED 0x10  /* the last check learned nothing (fail) */
#define BBS_SLOT_STANDBY_STATE 0x20 /* the node is in a standby state */
#define BBS_SLOT_HCFL 0x40    /* HcFl set here */
#define BBS_SLOT_ADMIN_STBY 0x80 /* balancer-manager gave Stby to the admin */
#define BBS_SLOT_YIELDED 0x100 /* an admin took the module's Stby off */
#define BBS_FLAG_GET (-1)
#define BBS_FLAG_CLEAR 0
#define BBS_FLAG_SET 1
/* Reads, sets or clears one flag; returns whether it was set before. */
int bbs_shm_flag(bbs_slot_t *slot, apr_uint32_t bit, int op);
apr_uint32_t bbs_shm_flags(bbs_slot_t *slot);
/* Replaces the bits of mask with those of bits, in one step. */
void bbs_shm_set_flags(bbs_slot_t *slot, apr_uint32_t mask,
                       apr_uint32_t bits);
/* The configuration generation the module's flags in the slot belong to
 * (0: none yet). */
apr_uint32_t bbs_shm_gen(bbs_slot_t *slot);
void bbs_shm_set_gen(bbs_slot_t *slot, apr_uint32_t gen);
/* The decision the diagnostics show, from a slot's flags. */
int bbs_decision_from(apr_uint32_t flags, int checked);
apr_size_t bbs_shm_capacity(void);
/* Takes or renews the checker's lease for process `me`; 1 if it holds it.
 * A lease not renewed for ttl is free to take. */
int bbs_shm_lease(apr_uint32_t me, apr_time_t now, apr_interval_time_t ttl);
void bbs_shm_lease_release(apr_uint32_t me);
/* FNV-1a of a string: slot placement and spreading first checks. */
apr_uint32_t bbs_hash(const char *s);

/* The checks (mod_bbstatus_watchdog.c, mod_bbstatus_probe.c). */
int bbs_watchdog_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                             apr_pool_t *ptemp, server_rec *s);
void bbs_watchdog_child_init(apr_pool_t *pchild, server_rec *s);
/* Notes the flags the configuration gives members; runs before
 * mod_proxy_balancer's post_config. */
int bbs_watchdog_config_flags(apr_pool_t *pconf, apr_pool_t *plog,
                              apr_pool_t *ptemp, server_rec *s);

/* Waking the checker at once for members whose requests failed
 * (mod_bbstatus_wake.c). fn runs in the checking child, under lock. */
typedef struct bbs_wake_t bbs_wake_t;
typedef void bbs_wake_fn(void *baton);
void bbs_wake_post_config(server_rec *s);
void bbs_wake_signal(void);
bbs_wake_t *bbs_wake_start(apr_pool_t *p, apr_thread_mutex_t *lock,
                           bbs_wake_fn *fn, void *baton, server_rec *s);
void bbs_wake_stop(bbs_wake_t *w);

typedef struct {
    bbs_answer_t answer;
    apr_interval_time_t latency;
} bbs_probe_result;

const char *bbs_probe_url(apr_pool_t *p, const proxy_worker *w);
/* The request path: "/base/status" with no double slash. */
const char *bbs_probe_path(apr_pool_t *p, const proxy_worker *w);
void bbs_probe_run(proxy_worker *hc, const char *path, server_rec *s,
                   ap_conf_vector_t *dir_config, const bbs_settings *set,
                   apr_pool_t *p, apr_thread_t *thread,
                   bbs_probe_result *out);
proxy_worker *bbs_probe_worker_create(proxy_worker *w, server_rec *s,
                                      const bbs_settings *set,
                                      apr_pool_t *p);

/* Sticky sessions and standby (mod_bbstatus_sticky.c). */
int bbs_sticky_pre_request(proxy_worker **worker, proxy_balancer **balancer,
                           request_rec *r, proxy_server_conf *conf,
                           char **url);
/* A member the lbmethod would choose before the hot standby `me`. */
int bbs_better_member_usable(proxy_balancer *b, const proxy_worker *me);
/* Whether a request whose route names w reaches it now; -1 when no
 * request can name it (no stickysession, or w has no route). */
int bbs_sticky_in_rotation(proxy_balancer *b, proxy_worker *w);

/* Retrying what a leaving member answered (mod_bbstatus_retry.c). */
void bbs_retry_register_hooks(void);

/* An administrator's Hot Standby in balancer-manager
 * (mod_bbstatus_manager.c). */
void bbs_manager_register(void);
void bbs_manager_insert_filter(request_rec *r);
int bbs_manager_log_transaction(request_rec *r);

/* Diagnostics (mod_bbstatus_handler.c, mod_bbstatus_status.c). */
const char *bbs_worker_flags(apr_pool_t *p, const proxy_worker *w);
int bbs_handler(request_rec *r);
int bbs_status_hook(request_rec *r, int flags);

#endif /* MOD_BBSTATUS_PRIVATE_H */
