/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Which child checks: a mod_watchdog callback that runs every tick in
 * every child and starts or stops the checker (mod_bbstatus_checker.c).
 *
 * One child checks at a time: the one holding the lease in shared memory
 * (mod_bbstatus_lease.c). The checking child renews the lease every tick,
 * the others try to take it, which they can once it has not been renewed
 * for LEASE_TTL. A child that is shutting down stops getting ticks from
 * mod_watchdog long before it exits, and a killed one releases nothing:
 * either way another child goes on within LEASE_TTL. (A mod_watchdog
 * singleton or a process lock would leave the members unchecked until the
 * old child is gone, or ten seconds more.)
 *
 * mod_watchdog may call the callback with STOPPING from a pool cleanup
 * while its thread still runs, so the callback's states, and everything
 * the checker does from the watchdog thread, are serialized by a
 * per-process lock.
 *
 * A child exits by destroying pchild first and only then (at exit) the
 * pconf subpool whose cleanup joins mod_watchdog's thread, which keeps
 * ticking meanwhile. So the checker stops in a pchild pre-cleanup, while
 * everything a tick or a probe touches still exists, and from then on the
 * callback does nothing; the lock lives in pconf so that it outlives the
 * watchdog thread.
 */
#include "apr_thread_mutex.h"
#include "mod_watchdog.h"

#include "mod_bbstatus_config.h"
#include "mod_bbstatus_lease.h"
#include "mod_bbstatus_park.h"
#include "mod_bbstatus_flags.h"
#include "mod_bbstatus_checker.h"
#include "mod_bbstatus_watchdog.h"

#define WATCHDOG_NAME "_bbstatus_"
#define LEASE_TTL apr_time_from_msec(500)

typedef struct {
    bbs_checker_t *ck;
    server_rec *s;
    apr_thread_mutex_t *lock;  /* serializes the callback, per process */
    int leader;                /* this process holds the lease */
    int closed;                /* stopped for good: this process exits */
} leader_t;

/* Set in the parent at post_config, before children exist. */
static ap_watchdog_t *watchdog;
static leader_t *the_leader;

static void give_up_lead(leader_t *ld)
{
    bbs_checker_stop(ld->ck);
    if (ld->leader) {
        ld->leader = 0;
        bbs_lease_release((apr_uint32_t)getpid());
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ld->s, BBSLOGNO(0046)
                     "checker stopped in process %" APR_PID_T_FMT,
                     getpid());
    }
}

/* Every tick, in every child: renew or take the lease, and start or stop
 * checking accordingly. */
static void lead(leader_t *ld)
{
    int held;

    if (bbs_flags_outdated()) {
        give_up_lead(ld);
        return;
    }
    held = bbs_lease_take((apr_uint32_t)getpid(), apr_time_now(), LEASE_TTL);

    if (held && !ld->leader) {
        ld->leader = 1;
        bbs_checker_start(ld->ck);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ld->s, BBSLOGNO(0041)
                     "checker started in process %" APR_PID_T_FMT,
                     getpid());
    }
    else if (!held && ld->leader) {
        /* another child took over while this one was stalled */
        ld->leader = 0;
        bbs_checker_stop(ld->ck);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, ld->s, BBSLOGNO(0047)
                     "process %" APR_PID_T_FMT " lost the checker "
                     "lease after a stall; another child checks",
                     getpid());
    }
}

static apr_status_t watchdog_callback(int state, void *data, apr_pool_t *p)
{
    leader_t *ld = data;

    (void)p;
    if (!ld->lock || apr_thread_mutex_lock(ld->lock) != APR_SUCCESS) {
        return APR_SUCCESS;
    }
    if (ld->closed) {
        /* a RUNNING call that waited for the lock while the checker
         * stopped must not take the lease and start it again */
        apr_thread_mutex_unlock(ld->lock);
        return APR_EOF;
    }
    switch (state) {
    case AP_WATCHDOG_STATE_STARTING:
        break;
    case AP_WATCHDOG_STATE_RUNNING:
        lead(ld);
        if (ld->leader && bbs_checker_running(ld->ck)) {
            bbs_checker_tick(ld->ck);
        }
        else {
            /* between two leaders (a restart, a takeover) no member may
             * fall back to mod_proxy_hcheck, whichever child runs it */
            bbs_park_keep(ld->s);
        }
        break;
    case AP_WATCHDOG_STATE_STOPPING:
        give_up_lead(ld);
        ld->closed = 1;
        break;
    }
    apr_thread_mutex_unlock(ld->lock);
    return APR_SUCCESS;
}

static apr_status_t leader_child_exit(void *data)
{
    leader_t *ld = data;

    if (apr_thread_mutex_lock(ld->lock) == APR_SUCCESS) {
        give_up_lead(ld);
        ld->closed = 1;
        apr_thread_mutex_unlock(ld->lock);
    }
    return APR_SUCCESS;
}

void bbs_watchdog_child_init(apr_pool_t *pchild, server_rec *s)
{
    leader_t *ld = the_leader;

    (void)s;
    if (ld && ld->lock) {
        apr_pool_pre_cleanup_register(pchild, ld, leader_child_exit);
    }
}

int bbs_watchdog_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                             apr_pool_t *ptemp, server_rec *s)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get_instance;
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *register_callback;
    bbs_server_conf_t *sc = ap_get_module_config(s->module_config,
                                                 &bbstatus_module);
    leader_t *ld;
    apr_status_t rv;

    (void)plog;
    (void)ptemp;
    get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    register_callback = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    if (!get_instance || !register_callback) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     BBSLOGNO(0045) "mod_bbstatus needs mod_watchdog");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* not a mod_watchdog singleton: the checker elects itself, see top */
    rv = get_instance(&watchdog, WATCHDOG_NAME, 0, 0, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, BBSLOGNO(0042)
                     "cannot create the %s watchdog", WATCHDOG_NAME);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    bbs_flags_post_config(s);
    ld = apr_pcalloc(pconf, sizeof(*ld));
    ld->s = s;
    /* each child gets its own copy of this unlocked mutex at fork */
    if (apr_thread_mutex_create(&ld->lock, APR_THREAD_MUTEX_DEFAULT, pconf)
        != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s, BBSLOGNO(0044)
                     "no lock for the checker; no child checks");
        ld->lock = NULL;
    }
    ld->ck = bbs_checker_create(pconf, s, sc->threads, ld->lock);
    the_leader = ld;
    rv = register_callback(watchdog, AP_WD_TM_SLICE, ld, watchdog_callback);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     BBSLOGNO(0043) "cannot register the checker with the %s "
                     "watchdog", WATCHDOG_NAME);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}
