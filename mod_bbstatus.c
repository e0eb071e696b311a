/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * mod_bbstatus: hcmethod=BBSTATUS for mod_proxy_balancer members, decided
 * from the JSON "state" that Atlassian Data Center nodes report on
 * /status, and a diagnostics handler and server-status section that show
 * each decision with its reason.
 *
 * This file holds the module record and the hook registration; the parts
 * live in src/, one unit and header each (README, "Development", draws
 * how they fit together).
 */
#include <string.h>

#include "apr_hash.h"
#include "ap_release.h"
#include "http_request.h"
#include "mod_status.h"

#include "mod_bbstatus_config.h"
#include "mod_bbstatus_confcheck.h"
#include "mod_bbstatus_method.h"
#include "mod_bbstatus_lease.h"
#include "mod_bbstatus_shm.h"
#include "mod_bbstatus_park.h"
#include "mod_bbstatus_wake.h"
#include "mod_bbstatus_flags.h"
#include "mod_bbstatus_watchdog.h"
#include "mod_bbstatus_sticky.h"
#include "mod_bbstatus_warmup.h"
#include "mod_bbstatus_retry.h"
#include "mod_bbstatus_manager.h"
#include "mod_bbstatus_status.h"
#include "mod_bbstatus_handler.h"

#if !BBS_HAVE_NAME_EX
/* Before 2.4.53 httpd keeps member URLs in 96 bytes and cuts longer ones
 * (AH02808); the probe path is derived from the same cut URL. */
static void warn_cut_name(proxy_balancer *b, proxy_worker *w, void *baton)
{
    server_rec *s = baton;

    if (bbs_method_is(w) && strlen(w->s->name) >= sizeof(w->s->name) - 1) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, BBSLOGNO(0007)
                     "%s member %s: httpd " AP_SERVER_BASEREVISION
                     " keeps only %d characters of a member URL (2.4.53 "
                     "lifts the limit), so the probe may ask the wrong path;"
                     " use a shorter URL or hcuri", b->s->name, w->s->name,
                     (int)sizeof(w->s->name) - 1);
    }
}
#endif

static int bbs_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    server_rec *vs;
    apr_hash_t *seen = apr_hash_make(ptemp);
    int rv;

    /* the first, throw-away configuration pass starts nothing */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if ((rv = bbs_lease_post_config(s)) != OK
        || (rv = bbs_shm_post_config(pconf, s)) != OK) {
        return rv;
    }
    /* mod_proxy_balancer's post_config stamped every member as checked
     * now; mod_proxy_hcheck may run before the children park them */
    bbs_park_all(s);
    bbs_wake_post_config(s);
#if !BBS_HAVE_NAME_EX
    bbs_each_member(s, warn_cut_name, s);
#endif
    for (vs = s; vs; vs = vs->next) {
        proxy_server_conf *conf = ap_get_module_config(vs->module_config,
                                                       &proxy_module);
        proxy_worker *w;
        int i;

        if (!conf) {
            continue;
        }
        /* ProxyPass workers outside a balancer: nothing would act on a
         * verdict, so they are not checked; say so rather than be silent */
        w = (proxy_worker *)conf->workers->elts;
        for (i = 0; i < conf->workers->nelts; ++i, ++w) {
            if (bbs_method_is(w) && !apr_hash_get(seen, &w->s, sizeof(w->s))) {
                apr_hash_set(seen, &w->s, sizeof(w->s), w);
                ap_log_error(APLOG_MARK, APLOG_WARNING, 0, vs, BBSLOGNO(0006)
                             "%s has hcmethod=BBSTATUS but is not "
                             "a balancer member; only balancer members are "
                             "checked", bbs_wname(w));
            }
        }
    }
    return bbs_watchdog_post_config(pconf, plog, ptemp, s);
}

static int bbs_post_request(proxy_worker *worker, proxy_balancer *balancer,
                            request_rec *r, proxy_server_conf *conf)
{
    (void)conf;
    if (worker && balancer) {
        bbs_warmup_note(r, balancer, worker);
    }
    /* A failed request only asks for an early probe; the probe decides, so
     * a MAINTENANCE node answering 503 pages stays in rotation. A refused
     * connect shows as the member's error state: r->status is set from the
     * handler's return only after this hook. The checker is woken at
     * once, not at its next tick. */
    if (worker && balancer && bbs_method_is(worker)
        && (r->status >= 500 || PROXY_WORKER_IS_ERROR(worker))) {
        bbs_slot_t *slot = bbs_shm_member(balancer, worker, 0);
        if (slot && bbs_shm_request_probe(slot)) {
            bbs_wake_signal();
        }
    }
    return DECLINED;
}

static void bbs_child_init(apr_pool_t *pchild, server_rec *s)
{
    bbs_park_child_init(pchild, s);
    bbs_watchdog_child_init(pchild, s);
}

static void bbs_register_hooks(apr_pool_t *p)
{
    static const char *const after_balancer[] = {"mod_proxy_balancer.c",
                                                 "mod_proxy_hcheck.c", NULL};
    /* mod_watchdog creates the mutexes of the instances asked for before
     * its own post_config runs */
    static const char *const before_watchdog[] = {"mod_watchdog.c", NULL};
    static const char *const before_balancer[] = {"mod_proxy_balancer.c",
                                                  NULL};

    (void)p;
    ap_hook_pre_config(bbs_method_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(bbs_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(bbs_flags_config, NULL, before_balancer,
                        APR_HOOK_MIDDLE);
    ap_hook_post_config(bbs_post_config, after_balancer, before_watchdog,
                        APR_HOOK_LAST);
    ap_hook_child_init(bbs_child_init, after_balancer, NULL, APR_HOOK_LAST);
    ap_hook_handler(bbs_handler, NULL, NULL, APR_HOOK_MIDDLE);
    /* balancer-manager edits an administrator confirms */
    bbs_manager_register_hooks();
    APR_OPTIONAL_HOOK(ap, status_hook, bbs_status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
    /* post_request runs until a hook says OK, as mod_proxy_balancer's
     * always does: this one declines, and must come first */
    proxy_hook_post_request(bbs_post_request, NULL, before_balancer,
                            APR_HOOK_FIRST);
    /* pre_request runs until a hook answers; this one declines unless a
     * route names a member held in standby, and must see it first */
    proxy_hook_pre_request(bbs_sticky_pre_request, NULL, before_balancer,
                           APR_HOOK_FIRST);
    /* a request waits for the first checks after a start, and members
     * warming up are offered their share; declines otherwise */
    proxy_hook_pre_request(bbs_warmup_pre_request, NULL, before_balancer,
                           APR_HOOK_FIRST);
    /* the scheme handler that may retry runs mod_proxy_http's itself */
    bbs_retry_register_hooks();
}

module AP_MODULE_DECLARE_DATA bbstatus_module = {
    STANDARD20_MODULE_STUFF,
    bbs_create_dir_conf,
    bbs_merge_dir_conf,
    bbs_create_server_conf,
    NULL,
    bbs_cmds,
    bbs_register_hooks,
    AP_MODULE_FLAG_NONE
};
