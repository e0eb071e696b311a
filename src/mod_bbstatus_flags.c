/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The glue of the member rules (bbs_policy.c): what the module knows of a
 * member lives in the worker's counters and the slot's flags, so that a
 * checker taking over goes on with it; bbs_flags_step() loads it, runs
 * the rules, and applies their answer to the worker and the slot.
 */
#include <string.h>

#include "apr_atomic.h"
#include "apr_hash.h"

#include "bbs_policy.h"
#include "mod_bbstatus_config.h"
#include "mod_bbstatus_method.h"
#include "mod_bbstatus_shm.h"
#include "mod_bbstatus_flags.h"

/* The configuration generation plus one, so that 0 in a slot means "no
 * flags set yet". Set in the parent at post_config, before children. */
static apr_uint32_t config_gen;
/* Members the configuration makes hot standby (status=+H), by worker;
 * filled in the parent before mod_proxy_balancer mixes the configured
 * flags with those of the last generation, read-only afterwards. */
static apr_hash_t *config_standby;
/* Set in a child of an older generation once it meets a member that a
 * newer one holds: it stops checking, so the lease goes to a new child. */
static volatile apr_uint32_t outdated;

static void note_config_standby(proxy_balancer *b, proxy_worker *w,
                                void *baton)
{
    (void)b;
    if (PROXY_WORKER_IS_STANDBY(w)) {
        /* keyed by the worker's address, which stays for the generation */
        proxy_worker **key = apr_palloc(baton, sizeof(*key));
        *key = w;
        apr_hash_set(config_standby, key, sizeof(*key), w);
    }
}

int bbs_flags_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                     server_rec *s)
{
    (void)plog;
    (void)ptemp;
    config_standby = apr_hash_make(pconf);
    bbs_each_member(s, note_config_standby, pconf);
    return OK;
}

int bbs_flags_outdated(void)
{
    return apr_atomic_read32(&outdated) != 0;
}

static unsigned worker_flags(const proxy_worker *w)
{
    return (PROXY_WORKER_IS_STANDBY(w) ? BBS_WF_STBY : 0)
           | (PROXY_WORKER_IS_HCFAILED(w) ? BBS_WF_HCFL : 0)
           | (PROXY_WORKER_IS_ERROR(w) ? BBS_WF_ERROR : 0);
}

static void set_worker_flags(proxy_worker *w, unsigned bits, int on)
{
    if (bits & BBS_WF_STBY) {
        ap_proxy_set_wstatus(PROXY_WORKER_HOT_STANDBY_FLAG, on, w);
    }
    if (bits & BBS_WF_HCFL) {
        ap_proxy_set_wstatus(PROXY_WORKER_HC_FAIL_FLAG, on, w);
    }
    if (bits & BBS_WF_ERROR) {
        ap_proxy_set_wstatus(PROXY_WORKER_IN_ERROR_FLAG, on, w);
    }
}

#define SLOT_STATE (BBS_SLOT_DOWN | BBS_SLOT_FAILED | BBS_SLOT_STANDBY_STATE \
                    | BBS_SLOT_MODULE_SET_STBY | BBS_SLOT_MODULE_SET_HCFL | BBS_SLOT_YIELDED \
                    | BBS_SLOT_CHECKED)

static void load_state(const proxy_worker *w, bbs_slot_t *slot, int checked,
                       bbs_member_state_t *st)
{
    apr_uint32_t f = bbs_shm_flags(slot);

    memset(st, 0, sizeof(*st));
    st->pcount = w->s->pcount;
    st->fcount = w->s->fcount;
    st->down = (f & BBS_SLOT_DOWN) != 0;
    st->failed = (f & BBS_SLOT_FAILED) != 0;
    st->standby = (f & BBS_SLOT_STANDBY_STATE) != 0;
    st->checked = checked;
    st->owned = ((f & BBS_SLOT_MODULE_SET_STBY) ? BBS_WF_STBY : 0)
                | ((f & BBS_SLOT_MODULE_SET_HCFL) ? BBS_WF_HCFL : 0);
    st->yielded = (f & BBS_SLOT_YIELDED) != 0;
    st->gen = bbs_shm_gen(slot);
}

static apr_uint32_t state_bits(const bbs_member_state_t *st)
{
    return (st->down ? BBS_SLOT_DOWN : 0)
           | (st->failed ? BBS_SLOT_FAILED : 0)
           | (st->standby ? BBS_SLOT_STANDBY_STATE : 0)
           | ((st->owned & BBS_WF_STBY) ? BBS_SLOT_MODULE_SET_STBY : 0)
           | ((st->owned & BBS_WF_HCFL) ? BBS_SLOT_MODULE_SET_HCFL : 0)
           | (st->yielded ? BBS_SLOT_YIELDED : 0)
           | (st->checked ? BBS_SLOT_CHECKED : 0);
}

void bbs_flags_step(proxy_worker *w, bbs_slot_t *slot,
                    const bbs_settings_t *set, int checked,
                    const bbs_result_t *r, apr_time_t now,
                    bbs_policy_out_t *out)
{
    bbs_member_state_t prev;
    bbs_policy_in_t in;
    int admin_claim;

    load_state(w, slot, checked, &prev);
    memset(&in, 0, sizeof(in));
    in.verdict = r ? (int)r->verdict : BBS_NO_CHECK;
    in.standby = r ? r->standby : 0;
    in.passes = w->s->passes;
    in.fails = w->s->fails;
    in.fast_block = set ? set->fast_block : 0;
    in.panic = bbs_shm_flag(slot, BBS_SLOT_PANIC, BBS_FLAG_GET);
    in.ours = set && bbs_method_is(w);
    in.wflags = worker_flags(w);
    /* only read here: a checker of an older generation must not consume
     * an administrator's claim it then does not apply */
    admin_claim = bbs_shm_flag(slot, BBS_SLOT_ADMIN_CLAIMS_STBY, BBS_FLAG_GET);
    in.admin = (admin_claim
                || (config_standby
                    && apr_hash_get(config_standby, &w, sizeof(w))))
                   ? BBS_WF_STBY
                   : 0;
    in.gen = config_gen;
    bbs_policy_step(&prev, &in, out);
    if (out->next.gen != config_gen) {
        apr_atomic_set32(&outdated, 1);
        return; /* a newer generation holds the member */
    }
    if (admin_claim) {
        bbs_shm_flag(slot, BBS_SLOT_ADMIN_CLAIMS_STBY, BBS_FLAG_CLEAR);
    }
    set_worker_flags(w, out->set, 1);
    set_worker_flags(w, out->clear, 0);
    if (in.ours) {
        w->s->pcount = out->next.pcount;
        w->s->fcount = out->next.fcount;
        if (out->error_time) {
            w->s->error_time = now;
        }
    }
    bbs_shm_set_flags(slot, SLOT_STATE, state_bits(&out->next));
    bbs_shm_set_gen(slot, config_gen);
}

static void reapply_member(proxy_balancer *b, proxy_worker *w, void *baton)
{
    bbs_slot_t *slot;
    bbs_record_t rec;
    bbs_policy_out_t out;

    if (!bbs_method_is(w) || !(slot = bbs_shm_member(b, w, 0))) {
        return;
    }
    /* a member new to this generation has no record: it waits in standby
     * for its first check */
    if (!bbs_shm_read(slot, &rec)) {
        rec.checks = 0;
    }
    bbs_flags_step(w, slot, baton, rec.checks > 0, NULL, apr_time_now(),
                   &out);
}

/* A restart rebuilt every member's flags from the configuration. They get
 * what the members' records say here, in the parent, before the new
 * generation's children serve a request or elect a checker. */
void bbs_flags_post_config(server_rec *s)
{
    bbs_settings_t none;

    config_gen = (apr_uint32_t)ap_state_query(AP_SQ_CONFIG_GEN) + 1;
    memset(&none, 0, sizeof(none));
    bbs_each_member(s, reapply_member, &none);
}
