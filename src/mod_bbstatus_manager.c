/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * An administrator's Hot Standby, given in balancer-manager. The module
 * sets Stby on members in a standby state and clears it again; once an
 * administrator has said that a member is a hot standby, the flag is
 * theirs and must stay when the node goes RUNNING.
 *
 * balancer-manager's edit form shows every status flag as it is and
 * submits them all, so "Hot Standby: On" in a submission for a member
 * whose Stby the module set is, by itself, only the page repeating what
 * it showed (an administrator switching such a member to hcmethod=GET
 * sends it too). What can be told apart is a submission that says On and
 * changes nothing else of the member: that one has no other purpose than
 * to say "this member is a hot standby". It is observed here: the POST
 * body is copied as balancer-manager reads it, the member's settings are
 * compared with a copy taken before the handler ran, and the claim is
 * handed to the checker through the member's slot (BBS_SLOT_ADMIN_STBY).
 * The comparison runs when the page balancer-manager writes after its
 * edit ends (an output filter at EOS): only those POSTs carry the
 * filters, nothing runs for any other request past insert_filter's first
 * test.
 */
#include <string.h>

#include "apr_strings.h"
#include "http_protocol.h"
#include "http_request.h"
#include "util_filter.h"

#include "mod_bbstatus_method.h"
#include "mod_bbstatus_shm.h"
#include "mod_bbstatus_manager.h"

#define FILTER_NAME "BBS_MANAGER_EDIT"
#define CONFIRM_FILTER_NAME "BBS_MANAGER_CONFIRM"
/* balancer-manager reads at most this much of a POST body */
#define BODY_MAX 1024

/* What balancer-manager's form edits, besides the flags mod_proxy and
 * the checks change on their own. */
typedef struct {
    proxy_worker *w;
    unsigned int status;
    int lbfactor, lbset, passes, fails;
    hcmethod_t method;
    apr_interval_time_t interval;
    char route[PROXY_WORKER_MAX_ROUTE_SIZE];
    char redirect[PROXY_WORKER_MAX_ROUTE_SIZE];
    char hcuri[PROXY_WORKER_MAX_ROUTE_SIZE];
    char hcexpr[PROXY_WORKER_MAX_SCHEME_SIZE];
} settings_t;

typedef struct {
    char body[BODY_MAX + 1];
    apr_size_t len;
    apr_array_header_t *before; /* settings_t of every BBSTATUS member */
} edit_t;

static void settings_of(settings_t *out, proxy_worker *w)
{
    memset(out, 0, sizeof(*out));
    out->w = w;
    out->status = w->s->status
                  & ~(PROXY_WORKER_HC_FAIL | PROXY_WORKER_IN_ERROR);
    out->lbfactor = w->s->lbfactor;
    out->lbset = w->s->lbset;
    out->passes = w->s->passes;
    out->fails = w->s->fails;
    out->method = w->s->method;
    out->interval = w->s->interval;
    apr_cpystrn(out->route, w->s->route, sizeof(out->route));
    apr_cpystrn(out->redirect, w->s->redirect, sizeof(out->redirect));
    apr_cpystrn(out->hcuri, w->s->hcuri, sizeof(out->hcuri));
    apr_cpystrn(out->hcexpr, w->s->hcexpr, sizeof(out->hcexpr));
}

static apr_status_t copy_body(ap_filter_t *f, apr_bucket_brigade *bb,
                              ap_input_mode_t mode, apr_read_type_e block,
                              apr_off_t readbytes)
{
    edit_t *e = f->ctx;
    apr_status_t rv = ap_get_brigade(f->next, bb, mode, block, readbytes);
    apr_bucket *b;

    if (rv != APR_SUCCESS || mode != AP_MODE_READBYTES) {
        return rv;
    }
    for (b = APR_BRIGADE_FIRST(bb);
         b != APR_BRIGADE_SENTINEL(bb) && e->len < BODY_MAX;
         b = APR_BUCKET_NEXT(b)) {
        const char *data;
        apr_size_t n;

        if (APR_BUCKET_IS_METADATA(b)
            || apr_bucket_read(b, &data, &n, APR_BLOCK_READ) != APR_SUCCESS) {
            continue;
        }
        if (n > BODY_MAX - e->len) {
            n = BODY_MAX - e->len;
        }
        memcpy(e->body + e->len, data, n);
        e->len += n;
    }
    return APR_SUCCESS;
}

static void insert_filter(request_rec *r)
{
    proxy_server_conf *conf;
    edit_t *e;
    int i, k;

    if (r->method_number != M_POST || !r->handler
        || strcmp(r->handler, "balancer-manager")
        || !(conf = ap_get_module_config(r->server->module_config,
                                         &proxy_module))) {
        return;
    }
    e = apr_pcalloc(r->pool, sizeof(*e));
    e->before = apr_array_make(r->pool, 4, sizeof(settings_t));
    for (i = 0; i < conf->balancers->nelts; ++i) {
        proxy_balancer *b = &APR_ARRAY_IDX(conf->balancers, i,
                                           proxy_balancer);
        for (k = 0; k < b->workers->nelts; ++k) {
            proxy_worker *w = APR_ARRAY_IDX(b->workers, k, proxy_worker *);
            if (bbs_method_is(w)) {
                settings_of(apr_array_push(e->before), w);
            }
        }
    }
    ap_add_input_filter(FILTER_NAME, e, r, r->connection);
    ap_add_output_filter(CONFIRM_FILTER_NAME, e, r, r->connection);
}

static const char *param(apr_pool_t *p, const char *body, const char *name)
{
    char *copy = apr_pstrdup(p, body), *pair, *last;

    for (pair = apr_strtok(copy, "&", &last); pair;
         pair = apr_strtok(NULL, "&", &last)) {
        char *eq = strchr(pair, '=');
        if (!eq) {
            continue;
        }
        *eq = '\0';
        if (ap_unescape_urlencoded(pair) == OK && !strcmp(pair, name)
            && ap_unescape_urlencoded(eq + 1) == OK) {
            return eq + 1;
        }
    }
    return NULL;
}

static const settings_t *before_of(const edit_t *e, const proxy_worker *w)
{
    int i;

    for (i = 0; i < e->before->nelts; ++i) {
        const settings_t *s = &APR_ARRAY_IDX(e->before, i, settings_t);
        if (s->w == w) {
            return s;
        }
    }
    return NULL;
}

static void confirm(request_rec *r, edit_t *e)
{
    proxy_server_conf *conf;
    proxy_balancer *b;
    proxy_worker *w;
    const char *bname, *wname, *nonce, *h;
    const settings_t *before;
    settings_t after;
    bbs_slot_t *slot;

    if (!e->len || r->status != HTTP_OK) {
        return;
    }
    e->body[e->len] = '\0';
    h = param(r->pool, e->body, "w_status_H");
    bname = param(r->pool, e->body, "b");
    wname = param(r->pool, e->body, "w");
    nonce = param(r->pool, e->body, "nonce");
    conf = ap_get_module_config(r->server->module_config, &proxy_module);
    if (!h || strcmp(h, "1") || !bname || !wname || !nonce || !conf
        || !(b = ap_proxy_get_balancer(r->pool, conf,
                                       apr_pstrcat(r->pool, BALANCER_PREFIX,
                                                   bname, NULL), 0))
        || strcmp(nonce, b->s->nonce)
        || !(w = ap_proxy_get_worker(r->pool, b, conf, wname))
        || !(before = before_of(e, w))) {
        return;
    }
    settings_of(&after, w);
    if (memcmp(&after, before, sizeof(after))
        || !PROXY_WORKER_IS_STANDBY(w)
        || !(slot = bbs_shm_member(b, w, 0))
        || !bbs_shm_flag(slot, BBS_SLOT_STANDBY, BBS_FLAG_GET)) {
        return;
    }
    bbs_shm_flag(slot, BBS_SLOT_ADMIN_STBY, BBS_FLAG_SET);
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r,
                  BBSLOGNO(0013) "%s member %s: Hot Standby confirmed in "
                  "balancer-manager; the flag is the administrator's and "
                  "stays when the node leaves its standby state",
                  b->s->name, bbs_wname(w));
}

/* balancer-manager has made its edit before it writes its page: the
 * member's settings are final at the end of that page. */
static apr_status_t confirm_at_eos(ap_filter_t *f, apr_bucket_brigade *bb)
{
    apr_bucket *b;

    for (b = APR_BRIGADE_FIRST(bb); b != APR_BRIGADE_SENTINEL(bb);
         b = APR_BUCKET_NEXT(b)) {
        if (APR_BUCKET_IS_EOS(b)) {
            confirm(f->r, f->ctx);
            ap_remove_output_filter(f);
            break;
        }
    }
    return ap_pass_brigade(f->next, bb);
}

void bbs_manager_register_hooks(void)
{
    ap_register_input_filter(FILTER_NAME, copy_body, NULL,
                             AP_FTYPE_RESOURCE);
    ap_register_output_filter(CONFIRM_FILTER_NAME, confirm_at_eos, NULL,
                              AP_FTYPE_CONTENT_SET);
    ap_hook_insert_filter(insert_filter, NULL, NULL, APR_HOOK_MIDDLE);
}
