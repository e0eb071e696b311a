/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The checker: a mod_watchdog callback that every tick walks the
 * balancers, keeps BBSTATUS members parked away from mod_proxy_hcheck, and
 * hands each member that is due to a thread pool, so a hanging node only
 * ever holds its own check. What the checker keeps in process memory is
 * rebuilt from the configuration and the shared records when another
 * child takes over.
 *
 * One child checks at a time: the one holding the lease in shared memory
 * (bbs_shm_lease). The callback runs in every child; the checking child
 * renews the lease every tick, the others try to take it, which they can
 * once it has not been renewed for LEASE_TTL. A child that is shutting
 * down stops getting ticks from mod_watchdog long before it exits, and a
 * killed one releases nothing: either way another child goes on within
 * LEASE_TTL. (A mod_watchdog singleton or a process lock would leave the
 * members unchecked until the old child is gone, or ten seconds more.)
 *
 * Threads: the watchdog thread owns the checker and every member's
 * schedule; a pool thread owns a member (its pool, probe worker and last
 * record) from the moment the watchdog thread marks it busy until the
 * pool thread clears the mark. mod_watchdog may call the callback with
 * STOPPING from a pool cleanup while its thread still runs, so the
 * callback's states are serialized by a per-process lock.
 *
 * A child exits by destroying pchild first and only then (at exit) the
 * pconf subpool whose cleanup joins mod_watchdog's thread, which keeps
 * ticking meanwhile. So the checker stops in a pchild pre-cleanup, while
 * everything a tick or a probe touches still exists, and from then on the
 * callback does nothing; the lock lives in pconf so that it outlives the
 * watchdog thread.
 *
 * The thread pool is made once per process and never destroyed: with
 * apr-util 1.6, apr_thread_pool_destroy() frees the pool's memory while
 * its threads are still exiting through it (children died in
 * apr_allocator_destroy() right after it). A stopping checker waits for
 * its checks in flight instead; idle pool threads hold nothing of ours.
 */
#include <string.h>

#include "apr_atomic.h"
#include "apr_hash.h"
#include "apr_strings.h"
#include "apr_thread_pool.h"
#include "mod_watchdog.h"

#include "mod_bbstatus_private.h"

#define WATCHDOG_NAME "_bbstatus_"
#define LEASE_TTL apr_time_from_msec(500)

typedef struct checker_t checker_t;

typedef struct {
    proxy_balancer_shared *key; /* hash key: the same for vhost copies */
    proxy_balancer *b;
    server_rec *s;
    ap_conf_vector_t *dir_config; /* what requests to the balancer get */
    bbs_settings set;
    apr_array_header_t *members; /* member_t *, BBSTATUS or not */
    volatile apr_uint32_t panic;
    volatile apr_uint32_t checked; /* a check ended since the last judge */
    apr_time_t judged;             /* when panic was last judged */
} balancer_t;

typedef struct {
    proxy_worker_shared *key;   /* hash key */
    checker_t *ck;
    balancer_t *bal;
    proxy_worker *w;
    bbs_slot_t *slot;
    apr_pool_t *pool;       /* unmanaged: used by one thread at a time */
    proxy_worker *hc;       /* private worker the probes connect through */
    const char *path;
    const char *probe_url;
    apr_time_t due;
    apr_time_t launched;    /* due time of the check in flight */
    apr_time_t last_reprobe;
    volatile apr_uint32_t busy;
    bbs_record_t rec;       /* last record written, owned like the pool */
} member_t;

struct checker_t {
    apr_pool_t *pool;
    server_rec *s;
    apr_hash_t *members;    /* by worker shared record */
    apr_hash_t *balancers;  /* by balancer shared record */
    apr_hash_t *unrecorded; /* members found no record for, said once */
    apr_array_header_t *order; /* balancer_t *, in configuration order */
    apr_thread_pool_t *tp;     /* for the life of the process, see top */
    int threads;
    apr_thread_mutex_t *lock;  /* serializes the callback, per process */
    bbs_wake_t *wake;          /* runs wake_up on early probe requests */
    int leader;                /* this process holds the lease */
    int closed;                /* stopped for good: this process exits */
};

/* Set in the parent at post_config, before children exist. */
static ap_watchdog_t *watchdog;
static checker_t *the_checker;

const char *bbs_decision_name(int d)
{
    switch (d) {
    case BBS_DEC_ROUTE:
        return BBS_DECISION_ROUTE;
    case BBS_DEC_BLOCK:
        return BBS_DECISION_BLOCK;
    case BBS_DEC_STANDBY:
        return BBS_DECISION_STANDBY;
    case BBS_DEC_PANIC:
        return BBS_DECISION_PANIC;
    }
    return BBS_DECISION_PENDING;
}

int bbs_decision_from(apr_uint32_t flags, int checked)
{
    if (!checked) {
        return BBS_DEC_PENDING;
    }
    if (flags & BBS_SLOT_DOWN) {
        return (flags & BBS_SLOT_PANIC) ? BBS_DEC_PANIC : BBS_DEC_BLOCK;
    }
    return (flags & BBS_SLOT_STANDBY_STATE) ? BBS_DEC_STANDBY
                                            : BBS_DEC_ROUTE;
}

/* The worker's HcFl follows the checks, except while the balancer is in
 * panic. Only flags this module owns are touched. */
static void apply_flags(member_t *m)
{
    proxy_worker *w = m->w;
    apr_uint32_t f = bbs_shm_flags(m->slot);
    int want = (f & BBS_SLOT_DOWN) && !(f & BBS_SLOT_PANIC);

    if (want && !PROXY_WORKER_IS_HCFAILED(w)) {
        ap_proxy_set_wstatus(PROXY_WORKER_HC_FAIL_FLAG, 1, w);
    }
    else if (!want && PROXY_WORKER_IS_HCFAILED(w)) {
        ap_proxy_set_wstatus(PROXY_WORKER_HC_FAIL_FLAG, 0, w);
    }
}

/* mod_proxy_hcheck's counting, with one addition: a node that says it is
 * going away (block) leaves at once unless BBStatusFastBlock is off.
 * Counters are consecutive: a pass resets the fail count and back. */
static int count(member_t *m, const bbs_result_t *r, apr_time_t now)
{
    proxy_worker *w = m->w;
    int down = bbs_shm_flag(m->slot, BBS_SLOT_DOWN, BBS_FLAG_GET);

    if (r->verdict == BBS_ROUTE) {
        w->s->fcount = 0;
        if (down || PROXY_WORKER_IS_ERROR(w)) {
            if (++w->s->pcount >= w->s->passes) {
                w->s->pcount = 0;
                down = 0;
                /* as mod_proxy_hcheck does on recovery */
                ap_proxy_set_wstatus(PROXY_WORKER_IN_ERROR_FLAG, 0, w);
            }
        }
        else {
            w->s->pcount = 0;
        }
    }
    else if (r->verdict == BBS_BLOCK && m->bal->set.fast_block) {
        w->s->pcount = 0;
        w->s->fcount = 0;
        w->s->error_time = now;
        down = 1;
    }
    else {
        w->s->pcount = 0;
        if (!down) {
            w->s->error_time = now;
            if (++w->s->fcount >= w->s->fails) {
                w->s->fcount = 0;
                down = 1;
            }
        }
    }
    bbs_shm_flag(m->slot, BBS_SLOT_FAILED, r->verdict == BBS_FAIL
                                               ? BBS_FLAG_SET
                                               : BBS_FLAG_CLEAR);
    bbs_shm_flag(m->slot, BBS_SLOT_DOWN, down ? BBS_FLAG_SET
                                              : BBS_FLAG_CLEAR);
    return down;
}

/* Hot standby is the balancer's own way to say "only when nobody better
 * is there"; it is set here only where an administrator did not set it,
 * and only what was set here is ever cleared. */
static void apply_standby(member_t *m, const bbs_result_t *r, int down)
{
    proxy_worker *w = m->w;
    int ours = bbs_shm_flag(m->slot, BBS_SLOT_STANDBY, BBS_FLAG_GET);

    if (down) {
        return;
    }
    bbs_shm_flag(m->slot, BBS_SLOT_STANDBY_STATE,
                 r->standby ? BBS_FLAG_SET : BBS_FLAG_CLEAR);
    if (r->standby && !ours && !PROXY_WORKER_IS_STANDBY(w)) {
        ap_proxy_set_wstatus(PROXY_WORKER_HOT_STANDBY_FLAG, 1, w);
        bbs_shm_flag(m->slot, BBS_SLOT_STANDBY, BBS_FLAG_SET);
    }
    else if (!r->standby && ours) {
        bbs_shm_flag(m->slot, BBS_SLOT_STANDBY, BBS_FLAG_CLEAR);
        ap_proxy_set_wstatus(PROXY_WORKER_HOT_STANDBY_FLAG, 0, w);
    }
}

static int note_decision(member_t *m, apr_time_t now);

static void record_check(member_t *m, const bbs_probe_result *pr,
                         const bbs_result_t *r, apr_time_t now)
{
    bbs_record_t *rec = &m->rec;

    if (rec->checked_at) {
        rec->last_interval = now - rec->checked_at;
    }
    rec->checked_at = now;
    rec->latency = pr->latency;
    rec->checks++;
    if (r->verdict == BBS_FAIL) {
        rec->failures++;
    }
    rec->verdict = r->verdict;
    rec->has_state = r->has_state;
    apr_cpystrn(rec->state, r->has_state ? r->state : "", sizeof(rec->state));
    apr_cpystrn(rec->reason, r->reason, sizeof(rec->reason));
    rec->transport = pr->answer.transport;
    rec->http_status = pr->answer.transport == BBS_TX_OK
                           ? pr->answer.http_status
                           : 0;
    apr_cpystrn(rec->probe_url, m->probe_url, sizeof(rec->probe_url));
    note_decision(m, now);
    bbs_shm_write(m->slot, rec);
}

/* Records and logs a change of decision; the caller writes the record.
 * Called by whoever owns the member: its check, or the watchdog thread
 * between checks. */
static int note_decision(member_t *m, apr_time_t now)
{
    char code[16];
    bbs_record_t *rec = &m->rec;
    int before = rec->decision, after;

    after = rec->decision = bbs_decision_from(bbs_shm_flags(m->slot),
                                              rec->checks > 0);
    if (after != before) {
        bbs_change_t *c = &rec->history[rec->history_len % BBS_HISTORY];

        c->at = now;
        c->from = before;
        c->to = after;
        apr_cpystrn(c->state, rec->state, sizeof(c->state));
        apr_cpystrn(c->reason, rec->reason, sizeof(c->reason));
        rec->history_len++;
        rec->changed_at = now;
        apr_snprintf(code, sizeof(code), "%d", rec->http_status);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, m->bal->s,
                     "BBS0010: %s member %s: %s -> %s (state %s, %s): %s",
                     m->bal->b->s->name, bbs_wname(m->w),
                     bbs_decision_name(before), bbs_decision_name(after),
                     rec->has_state ? rec->state : "none",
                     rec->http_status ? code
                                      : bbs_transport_name(
                                            (bbs_transport_e)rec->transport),
                     rec->reason);
        return 1;
    }
    return 0;
}

static apr_interval_time_t interval_of(const member_t *m)
{
    apr_interval_time_t iv = m->w->s->interval;
    apr_interval_time_t fast = m->bal->set.fast_interval;

    if (fast && fast < iv && (m->w->s->pcount > 0 || m->w->s->fcount > 0)) {
        return fast;
    }
    return iv;
}

static void *APR_THREAD_FUNC check_member(apr_thread_t *thread, void *data)
{
    member_t *m = data;
    apr_pool_t *p;
    bbs_probe_result pr;
    bbs_result_t r;
    apr_time_t now;
    int down;

    apr_pool_create(&p, m->pool);
    bbs_probe_run(m->hc, m->path, m->bal->s, m->bal->dir_config,
                  &m->bal->set, p, thread, &pr);
    bbs_decide(&m->bal->set.rules, &pr.answer, &r);
    now = apr_time_now();
    down = count(m, &r, now);
    apply_standby(m, &r, down);
    apply_flags(m);
    record_check(m, &pr, &r, now);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, m->bal->s,
                 "BBS0011: checked %s member %s: %s, %s (%" APR_TIME_T_FMT
                 " us, passes %d/%d, fails %d/%d)",
                 m->bal->b->s->name, bbs_wname(m->w),
                 bbs_verdict_name(r.verdict), r.reason, pr.latency,
                 m->w->s->pcount, m->w->s->passes, m->w->s->fcount,
                 m->w->s->fails);
    apr_pool_destroy(p);
    m->due = m->launched + interval_of(m);
    apr_atomic_set32(&m->bal->checked, 1);
    apr_atomic_set32(&m->busy, 0);
    return NULL;
}

static balancer_t *balancer_of(checker_t *ck, proxy_balancer *b,
                               server_rec *s)
{
    /* keyed by the address of the shared record, not by its bytes */
    balancer_t *bal = apr_hash_get(ck->balancers, &b->s, sizeof(b->s));

    if (!bal) {
        bal = apr_pcalloc(ck->pool, sizeof(*bal));
        bal->key = b->s;
        bal->b = b;
        bal->s = s;
        bal->members = apr_array_make(ck->pool, 4, sizeof(member_t *));
        bal->dir_config = bbs_balancer_dir_config(ck->pool, s, b);
        bbs_settings_for(&bal->set, bal->dir_config);
        apr_hash_set(ck->balancers, &bal->key, sizeof(bal->key), bal);
        APR_ARRAY_PUSH(ck->order, balancer_t *) = bal;
    }
    return bal;
}

static apr_uint32_t spread(const char *key, apr_uint32_t range)
{
    return range ? bbs_hash(key) % range : 0;
}

static member_t *member_of(checker_t *ck, balancer_t *bal, proxy_worker *w,
                           apr_time_t now)
{
    member_t *m = apr_hash_get(ck->members, &w->s, sizeof(w->s));
    bbs_slot_t *slot;

    if (m) {
        return m;
    }
    slot = bbs_shm_member(bal->b, w, 1);
    if (!slot) {
        if (!apr_hash_get(ck->unrecorded, &w->s, sizeof(w->s))) {
            apr_hash_set(ck->unrecorded, &w->s, sizeof(w->s), w);
            ap_log_error(APLOG_MARK, APLOG_ERR, 0, bal->s,
                         "BBS0061: %s member %s is not checked: all %"
                         APR_SIZE_T_FMT " shared records are taken; a "
                         "graceful restart sizes them for the members "
                         "configured and BalancerGrowth",
                         bal->b->s->name, bbs_wname(w),
                         bbs_shm_capacity());
        }
        return NULL;
    }
    m = apr_pcalloc(ck->pool, sizeof(*m));
    m->key = w->s;
    m->ck = ck;
    m->bal = bal;
    m->w = w;
    m->slot = slot;
    apr_pool_create_unmanaged_ex(&m->pool, NULL, NULL);
    m->path = bbs_probe_path(m->pool, w);
    m->probe_url = bbs_probe_url(m->pool, w);
    if (!bbs_shm_read(slot, &m->rec)) {
        memset(&m->rec, 0, sizeof(m->rec));
    }
    /* A checker taking over goes on from the last check in the shared
     * record. The very first checks are spread over the first interval,
     * so a start does not fire every probe of a large farm in one tick. */
    if (m->rec.checked_at) {
        m->due = m->rec.checked_at + w->s->interval;
    }
    else {
        m->due = now + spread(bbs_wname(w),
                              (apr_uint32_t)apr_time_as_msec(
                                  w->s->interval))
                           * APR_TIME_C(1000);
    }
    apr_hash_set(ck->members, &m->key, sizeof(m->key), m);
    APR_ARRAY_PUSH(bal->members, member_t *) = m;
    ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, bal->s,
                 "BBS0012: %s member %s: first check in %" APR_TIME_T_FMT
                 " ms, probing %s", bal->b->s->name, bbs_wname(w),
                 apr_time_as_msec(m->due - now), m->probe_url);
    return m;
}

static void schedule(checker_t *ck, member_t *m, apr_time_t now)
{
    if (apr_atomic_read32(&m->busy)) {
        /* a re-probe request waits until the running probe is done */
        return;
    }
    /* a request for a probe waits, set, until the re-probe interval since
     * the last one has passed: a storm of failures yields one probe per
     * interval, and none is lost */
    if (m->bal->set.reprobe > 0
        && now - m->last_reprobe >= m->bal->set.reprobe
        && bbs_shm_take_probe_request(m->slot)) {
        m->last_reprobe = now;
        m->due = now;
    }
    if (now < m->due) {
        return;
    }
    if (!m->hc) {
        m->hc = bbs_probe_worker_create(m->w, m->bal->s, &m->bal->set,
                                        m->pool);
        if (!m->hc) {
            m->due = now + m->w->s->interval;
            return;
        }
    }
    /* the check sets the next due time from this one, with the counts
     * it leaves (BBStatusFastInterval); after a stall, from now */
    m->launched = (now - m->due < m->w->s->interval) ? m->due : now;
    apr_atomic_set32(&m->busy, 1);
    if (!ck->tp || apr_thread_pool_push(ck->tp, check_member, m,
                                        APR_THREAD_TASK_PRIORITY_NORMAL,
                                        NULL) != APR_SUCCESS) {
        check_member(NULL, m);
    }
}

/* Panic: when every member of a balancer is out only because its checks
 * failed (none said it is going away), the checks are more likely wrong
 * than the whole cluster; keep routing and say so, once. */
static void judge_panic(balancer_t *bal, apr_time_t now)
{
    int i, ours = 0, failed = 0, usable_other = 0, panic;

    /* only a check, or a flag an administrator or mod_proxy_hcheck set on
     * another member, changes the answer: judge after checks, and at
     * least every second for the rest */
    if (!apr_atomic_xchg32(&bal->checked, 0)
        && now - bal->judged < apr_time_from_sec(1)) {
        return;
    }
    bal->judged = now;

    for (i = 0; i < bal->b->workers->nelts; ++i) {
        proxy_worker *w = APR_ARRAY_IDX(bal->b->workers, i, proxy_worker *);
        if (PROXY_WORKER_IS(w, PROXY_WORKER_DISABLED | PROXY_WORKER_STOPPED)) {
            continue;
        }
        if (!bbs_method_is(w)) {
            usable_other |= PROXY_WORKER_IS_USABLE(w) ? 1 : 0;
        }
    }
    for (i = 0; i < bal->members->nelts; ++i) {
        member_t *m = APR_ARRAY_IDX(bal->members, i, member_t *);
        if (!bbs_method_is(m->w)
            || PROXY_WORKER_IS(m->w, PROXY_WORKER_DISABLED
                                         | PROXY_WORKER_STOPPED)) {
            continue;
        }
        ours++;
        if (bbs_shm_flag(m->slot, BBS_SLOT_DOWN, BBS_FLAG_GET)
            && bbs_shm_flag(m->slot, BBS_SLOT_FAILED, BBS_FLAG_GET)) {
            failed++;
        }
    }
    panic = bal->set.panic && ours > 0 && failed == ours && !usable_other;
    if (panic != (int)apr_atomic_read32(&bal->panic)) {
        apr_atomic_set32(&bal->panic, (apr_uint32_t)panic);
        if (panic) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, bal->s,
                         "BBS0030: %s: every member failed its checks and "
                         "none said it is stopping; routing to all of them "
                         "until one passes (BBStatusPanic)", bal->b->s->name);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, bal->s,
                         "BBS0031: %s: panic over, the checks decide again",
                         bal->b->s->name);
        }
    }
    for (i = 0; i < bal->members->nelts; ++i) {
        member_t *m = APR_ARRAY_IDX(bal->members, i, member_t *);
        bbs_shm_flag(m->slot, BBS_SLOT_PANIC, panic ? BBS_FLAG_SET
                                                    : BBS_FLAG_CLEAR);
        /* an idle member belongs to this thread until it is handed to a
         * probe again; a busy one is settled by its check */
        if (bbs_method_is(m->w) && !apr_atomic_read32(&m->busy)) {
            apply_flags(m);
            if (note_decision(m, now)) {
                bbs_shm_write(m->slot, &m->rec);
            }
        }
    }
}

typedef struct {
    checker_t *ck;
    apr_time_t now;
} tick_t;

static void tick_balancer(server_rec *s, proxy_server_conf *conf,
                          proxy_balancer *b, void *baton)
{
    tick_t *t = baton;
    balancer_t *bal;
    int k;

    /* members added in balancer-manager; the balancer's own lock, as its
     * request path takes it for the same call */
    if (b->s->wupdated > b->wupdated && PROXY_THREAD_LOCK(b) == APR_SUCCESS) {
        ap_proxy_sync_balancer(b, s, conf);
        PROXY_THREAD_UNLOCK(b);
    }
    bal = balancer_of(t->ck, b, s);
    if (bal->b != b) {
        return; /* a virtual host's copy of a balancer seen already */
    }
    for (k = 0; k < b->workers->nelts; ++k) {
        proxy_worker *w = APR_ARRAY_IDX(b->workers, k, proxy_worker *);
        member_t *m = bbs_method_is(w) ? member_of(t->ck, bal, w, t->now)
                                       : NULL;

        bbs_method_park(w, m ? m->slot
                             : bbs_shm_member(b, w, 0),
                        t->now);
        if (m && !PROXY_WORKER_IS(w, PROXY_WORKER_STOPPED)) {
            schedule(t->ck, m, t->now);
        }
    }
}

static void tick(checker_t *ck)
{
    tick_t t;
    int i;

    t.ck = ck;
    t.now = apr_time_now();
    bbs_each_balancer(ck->s, tick_balancer, &t);
    for (i = 0; i < ck->order->nelts; ++i) {
        judge_panic(APR_ARRAY_IDX(ck->order, i, balancer_t *), t.now);
    }
}

/* Early probe requests between ticks (mod_bbstatus_wake.c), under the
 * callback's lock: what a tick does for members already known. */
static void wake_up(void *data)
{
    checker_t *ck = data;
    apr_time_t now = apr_time_now();
    apr_hash_index_t *hi;

    if (!ck->leader || !ck->pool || ck->closed) {
        return;
    }
    for (hi = apr_hash_first(NULL, ck->members); hi; hi = apr_hash_next(hi)) {
        member_t *m = apr_hash_this_val(hi);
        if (bbs_method_is(m->w) && !PROXY_WORKER_IS(m->w,
                                                    PROXY_WORKER_STOPPED)) {
            schedule(ck, m, now);
        }
    }
}

static void checker_start(checker_t *ck)
{
    apr_pool_t *tp_pool;
    apr_status_t rv;

    apr_pool_create_unmanaged_ex(&ck->pool, NULL, NULL);
    ck->members = apr_hash_make(ck->pool);
    ck->balancers = apr_hash_make(ck->pool);
    ck->unrecorded = apr_hash_make(ck->pool);
    ck->order = apr_array_make(ck->pool, 4, sizeof(balancer_t *));
    ck->wake = bbs_wake_start(ck->pool, ck->lock, wake_up, ck, ck->s);
    if (ck->tp) {
        return;
    }
    apr_pool_create_unmanaged_ex(&tp_pool, NULL, NULL);
    /* all threads from the start: APR adds a thread only when none is
     * idle, so with fewer, a probe pushed in the same tick as a hanging
     * one could wait behind it */
    rv = apr_thread_pool_create(&ck->tp, (apr_size_t)ck->threads,
                                (apr_size_t)ck->threads, tp_pool);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, ck->s,
                     "BBS0040: no thread pool of %d threads; probes run "
                     "one after the other", ck->threads);
        ck->tp = NULL;
    }
}

static void checker_stop(checker_t *ck)
{
    apr_hash_index_t *hi;

    if (!ck->pool) {
        return;
    }
    bbs_wake_stop(ck->wake);
    ck->wake = NULL;
    for (hi = apr_hash_first(NULL, ck->members); hi; hi = apr_hash_next(hi)) {
        member_t *m = apr_hash_this_val(hi);
        /* a check in flight or queued owns the member until it ends; each
         * is bounded by BBStatusTimeout */
        while (apr_atomic_read32(&m->busy)) {
            apr_sleep(apr_time_from_msec(10));
        }
        apr_pool_destroy(m->pool);
    }
    apr_pool_destroy(ck->pool);
    ck->pool = NULL;
}

static void give_up_lead(checker_t *ck)
{
    checker_stop(ck);
    if (ck->leader) {
        ck->leader = 0;
        bbs_shm_lease_release((apr_uint32_t)getpid());
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ck->s,
                     "BBS0046: checker stopped in process %" APR_PID_T_FMT,
                     getpid());
    }
}

/* Every tick, in every child: renew or take the lease, and start or stop
 * checking accordingly. */
static void lead(checker_t *ck)
{
    int held = bbs_shm_lease((apr_uint32_t)getpid(), apr_time_now(),
                             LEASE_TTL);

    if (held && !ck->leader) {
        ck->leader = 1;
        checker_start(ck);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, ck->s,
                     "BBS0041: checker started in process %" APR_PID_T_FMT,
                     getpid());
    }
    else if (!held && ck->leader) {
        /* another child took over while this one was stalled */
        ck->leader = 0;
        checker_stop(ck);
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, ck->s,
                     "BBS0047: process %" APR_PID_T_FMT " lost the checker "
                     "lease after a stall; another child checks",
                     getpid());
    }
}

static apr_status_t watchdog_callback(int state, void *data, apr_pool_t *p)
{
    checker_t *ck = data;

    (void)p;
    if (!ck->lock || apr_thread_mutex_lock(ck->lock) != APR_SUCCESS) {
        return APR_SUCCESS;
    }
    if (ck->closed) {
        /* a RUNNING call that waited for the lock while the checker
         * stopped must not take the lease and start it again */
        apr_thread_mutex_unlock(ck->lock);
        return APR_EOF;
    }
    switch (state) {
    case AP_WATCHDOG_STATE_STARTING:
        break;
    case AP_WATCHDOG_STATE_RUNNING:
        lead(ck);
        if (ck->leader && ck->pool) {
            tick(ck);
        }
        else {
            /* between two leaders (a restart, a takeover) no member may
             * fall back to mod_proxy_hcheck, whichever child runs it */
            bbs_method_keep_parked(ck->s);
        }
        break;
    case AP_WATCHDOG_STATE_STOPPING:
        give_up_lead(ck);
        ck->closed = 1;
        break;
    }
    apr_thread_mutex_unlock(ck->lock);
    return APR_SUCCESS;
}

static apr_status_t checker_child_exit(void *data)
{
    checker_t *ck = data;

    if (apr_thread_mutex_lock(ck->lock) == APR_SUCCESS) {
        give_up_lead(ck);
        ck->closed = 1;
        apr_thread_mutex_unlock(ck->lock);
    }
    return APR_SUCCESS;
}

void bbs_watchdog_child_init(apr_pool_t *pchild, server_rec *s)
{
    checker_t *ck = the_checker;

    (void)s;
    if (ck && ck->lock) {
        apr_pool_pre_cleanup_register(pchild, ck, checker_child_exit);
    }
}

int bbs_watchdog_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                             apr_pool_t *ptemp, server_rec *s)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get_instance;
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *register_callback;
    bbs_server_conf *sc = ap_get_module_config(s->module_config,
                                               &bbstatus_module);
    checker_t *ck;
    apr_status_t rv;

    (void)plog;
    (void)ptemp;
    get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    register_callback = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    if (!get_instance || !register_callback) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "BBS0001: mod_bbstatus needs mod_watchdog");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* not a mod_watchdog singleton: the checker elects itself, see top */
    rv = get_instance(&watchdog, WATCHDOG_NAME, 0, 0, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "BBS0042: cannot create the %s watchdog", WATCHDOG_NAME);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ck = apr_pcalloc(pconf, sizeof(*ck));
    ck->s = s;
    ck->threads = sc->threads;
    /* each child gets its own copy of this unlocked mutex at fork */
    if (apr_thread_mutex_create(&ck->lock, APR_THREAD_MUTEX_DEFAULT, pconf)
        != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, 0, s,
                     "BBS0044: no lock for the checker; no child checks");
        ck->lock = NULL;
    }
    the_checker = ck;
    rv = register_callback(watchdog, AP_WD_TM_SLICE, ck, watchdog_callback);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "BBS0043: cannot register the checker with the %s "
                     "watchdog", WATCHDOG_NAME);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}
