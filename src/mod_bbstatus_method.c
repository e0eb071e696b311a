/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * hcmethod=BBSTATUS. mod_proxy keeps a table of health-check methods with
 * one reserved row, PROVIDER, that nothing implements. The module gives
 * that row its name before the configuration is read, so mod_proxy_hcheck
 * parses BBSTATUS in BalancerMember, ProxyHCTemplate and balancer-manager,
 * and gives it back when the module goes, since the name lives in this
 * module's memory and httpd may unload it on restart. Keeping
 * mod_proxy_hcheck off the row's members is mod_bbstatus_park.c's.
 */
#include <string.h>

#include "ap_provider.h"
#include "ap_slotmem.h"
#include "http_config.h"

#include "mod_bbstatus_method.h"

static const char method_name[] = BBS_METHOD_NAME;

typedef struct {
    proxy_hcmethods_t *row;
    char *saved_name;
    int saved_implemented;
} claim_t;

static apr_status_t release_row(void *data)
{
    claim_t *c = data;

    c->row->name = c->saved_name;
    c->row->implemented = c->saved_implemented;
    return APR_SUCCESS;
}

const char *bbs_method_requirements(void)
{
    static const char *const needed[] = {
        "mod_proxy.c", "mod_proxy_balancer.c", "mod_proxy_hcheck.c",
        "mod_watchdog.c", NULL
    };
    int i;

    for (i = 0; needed[i]; ++i) {
        if (!ap_find_linked_module(needed[i])) {
            return needed[i];
        }
    }
    if (!ap_lookup_provider(AP_SLOTMEM_PROVIDER_GROUP, "shm",
                            AP_SLOTMEM_PROVIDER_VERSION)) {
        return "mod_slotmem_shm.c";
    }
    return NULL;
}

int bbs_method_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp)
{
    proxy_hcmethods_t *m;
    const char *missing = bbs_method_requirements();
    claim_t *c;

    (void)plog;
    (void)ptemp;
    if (missing) {
        /* "mod_proxy_hcheck.c" -> module "proxy_hcheck" */
        int len = (int)strlen(missing) - 6;
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, NULL, BBSLOGNO(0001)
                     "mod_bbstatus needs mod_%.*s: load it with "
                     "LoadModule %.*s_module (Debian: a2enmod %.*s)", len,
                     missing + 4, len, missing + 4, len, missing + 4);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (m = proxy_hcmethods; m->name; ++m) {
        if (m->method == PROVIDER) {
            break;
        }
    }
    if (!m->name) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, NULL, BBSLOGNO(0004)
                     "this mod_proxy has no PROVIDER health-check "
                     "method for BBSTATUS to take");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (strcmp(m->name, "PROVIDER") || m->implemented) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, NULL, BBSLOGNO(0005)
                     "the PROVIDER health-check method is already "
                     "taken by another module (as %s); mod_bbstatus cannot "
                     "provide BBSTATUS", m->name);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    c = apr_palloc(pconf, sizeof(*c));
    c->row = m;
    c->saved_name = m->name;
    c->saved_implemented = m->implemented;
    m->name = (char *)method_name;
    m->implemented = 1;
    apr_pool_cleanup_register(pconf, c, release_row, apr_pool_cleanup_null);
    return OK;
}
