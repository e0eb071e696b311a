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
 * handed to the checker through the member's slot (BBS_SLOT_ADMIN_CLAIMS_STBY).
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
#include "mod_bbstatus_wake.h"
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
    char body[BODY_MAX + 1];   /* as the administrator's browser sent it */
    apr_size_t len;
    int switched;              /* it switches a member to BBSTATUS */
    apr_array_header_t *before; /* settings_t of every member */
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

static const char *param(apr_pool_t *p, const char *body, const char *name);

/* The member a submission edits, from its b= and w=. */
static proxy_worker *edited(request_rec *r, const char *body,
                            proxy_balancer **bout)
{
    proxy_server_conf *conf = ap_get_module_config(r->server->module_config,
                                                   &proxy_module);
    const char *bname = param(r->pool, body, "b");
    const char *wname = param(r->pool, body, "w");
    proxy_balancer *b;

    if (!conf || !bname || !wname
        || !(b = ap_proxy_get_balancer(r->pool, conf,
                                       apr_pstrcat(r->pool, BALANCER_PREFIX,
                                                   bname, NULL), 0))) {
        return NULL;
    }
    *bout = b;
    return ap_proxy_get_worker(r->pool, b, conf, wname);
}

/* A submission that switches a member to BBSTATUS makes it a hot standby
 * in the same edit, so that no request can choose it before its first
 * check (balancer-manager applies the form's Hot Standby, Off as shown, in
 * the same edit: setting the flag before or after would leave a window).
 * The administrator's own Hot Standby On stays theirs. */
static const char *standby_on_switch(request_rec *r, edit_t *e)
{
    const char *hm = param(r->pool, e->body, "w_hm");
    const char *h = param(r->pool, e->body, "w_status_H");
    proxy_balancer *b;
    proxy_worker *w;
    char *out, *at;

    if (!hm || strcasecmp(hm, BBS_METHOD_NAME)
        || (h && !strcmp(h, "1"))
        || !(w = edited(r, e->body, &b)) || bbs_method_is(w)) {
        return NULL;
    }
    e->switched = 1;
    out = apr_pstrdup(r->pool, e->body);
    if ((at = strstr(out, "w_status_H=0"))
        && (at == out || at[-1] == '&')) {
        at[sizeof("w_status_H=0") - 2] = '1';
        return out;
    }
    return h ? NULL : apr_pstrcat(r->pool, out, "&w_status_H=1", NULL);
}

static apr_status_t copy_body(ap_filter_t *f, apr_bucket_brigade *bb,
                              ap_input_mode_t mode, apr_read_type_e block,
                              apr_off_t readbytes)
{
    edit_t *e = f->ctx;
    apr_status_t rv = ap_get_brigade(f->next, bb, mode, block, readbytes);
    apr_size_t len = BODY_MAX - e->len;
    const char *rewritten;
    int eos;

    if (rv != APR_SUCCESS || mode != AP_MODE_READBYTES || e->len) {
        return rv;
    }
    /* balancer-manager reads its form in one call of at most 1024 bytes */
    eos = !APR_BRIGADE_EMPTY(bb) && APR_BUCKET_IS_EOS(APR_BRIGADE_LAST(bb));
    apr_brigade_flatten(bb, e->body, &len);
    e->len = len;
    e->body[e->len] = '\0';
    if ((rewritten = standby_on_switch(f->r, e))
        && strlen(rewritten) <= BODY_MAX) {
        apr_brigade_cleanup(bb);
        APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_pool_create(
                                        rewritten, strlen(rewritten),
                                        f->r->pool, f->c->bucket_alloc));
        if (eos) {
            APR_BRIGADE_INSERT_TAIL(bb, apr_bucket_eos_create(
                                            f->c->bucket_alloc));
        }
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
            settings_of(apr_array_push(e->before),
                        APR_ARRAY_IDX(b->workers, k, proxy_worker *));
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

/* A member switched to BBSTATUS gets no request before its first check:
 * the edit made it a hot standby (standby_on_switch), which is the
 * module's from here, and it is checked at once, not at the checker's
 * next tick. */
static void switched_to_bbstatus(request_rec *r, proxy_balancer *b,
                                 proxy_worker *w)
{
    bbs_slot_t *slot = bbs_shm_member(b, w, 1);

    if (!slot) {
        return; /* no record: the checker says why (BBS0061) */
    }
    /* the Stby the edit set is the module's, to clear at the first check
     * that routes */
    bbs_shm_flag(slot, BBS_SLOT_MODULE_SET_STBY, BBS_FLAG_SET);
    if (bbs_shm_request_probe(slot)) {
        bbs_wake_signal();
    }
    ap_log_rerror(APLOG_MARK, APLOG_NOTICE, 0, r, BBSLOGNO(0104)
                  "%s member %s: switched to BBSTATUS in balancer-manager; "
                  "a hot standby until its first check, made at once",
                  b->s->name, bbs_wname(w));
}

static void confirm(request_rec *r, edit_t *e)
{
    proxy_balancer *b;
    proxy_worker *w;
    const char *nonce, *h;
    const settings_t *before;
    settings_t after;
    bbs_slot_t *slot;

    if (!e->len || r->status != HTTP_OK) {
        return;
    }
    e->body[e->len] = '\0';
    nonce = param(r->pool, e->body, "nonce");
    if (!nonce || !(w = edited(r, e->body, &b))
        || strcmp(nonce, b->s->nonce)) {
        return;
    }
    if (e->switched) {
        /* balancer-manager made the edit when the method is BBSTATUS now */
        if (bbs_method_is(w)) {
            switched_to_bbstatus(r, b, w);
        }
        return;
    }
    h = param(r->pool, e->body, "w_status_H");
    if (!h || strcmp(h, "1") || !(before = before_of(e, w))) {
        return;
    }
    settings_of(&after, w);
    if (memcmp(&after, before, sizeof(after))
        || !PROXY_WORKER_IS_STANDBY(w)
        || !(slot = bbs_shm_member(b, w, 0))
        || !bbs_shm_flag(slot, BBS_SLOT_MODULE_SET_STBY, BBS_FLAG_GET)) {
        return;
    }
    bbs_shm_flag(slot, BBS_SLOT_ADMIN_CLAIMS_STBY, BBS_FLAG_SET);
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
