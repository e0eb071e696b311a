/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The checker: every tick it walks the balancers, keeps BBSTATUS members
 * parked away from mod_proxy_hcheck, and hands each member that is due to
 * a thread pool, so a hanging node only ever holds its own check. What
 * the checker keeps in process memory is rebuilt from the configuration
 * and the shared records when another child takes over. Which child
 * checks, and when the checker starts and stops, is
 * mod_bbstatus_watchdog.c's.
 *
 * Threads: the watchdog thread owns the checker and every member's
 * schedule; a pool thread owns a member (its pool, probe worker and last
 * record) from the moment the watchdog thread marks it busy until the
 * pool thread clears the mark. Every entry point below runs under the
 * lock given to bbs_checker_create().
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
#include "apr_thread_pool.h"

#include "bbs_policy.h"
#include "mod_bbstatus_config.h"
#include "mod_bbstatus_method.h"
#include "mod_bbstatus_shm.h"
#include "mod_bbstatus_park.h"
#include "mod_bbstatus_probe.h"
#include "mod_bbstatus_wake.h"
#include "mod_bbstatus_flags.h"
#include "mod_bbstatus_record.h"
#include "mod_bbstatus_ramp.h"
#include "mod_bbstatus_checker.h"

typedef bbs_checker_t checker_t;

typedef struct {
    proxy_balancer_shared *key; /* hash key: the same for vhost copies */
    proxy_balancer *b;
    server_rec *s;
    ap_conf_vector_t *dir_config; /* what requests to the balancer get */
    bbs_settings_t set;
    apr_array_header_t *members; /* member_t *, BBSTATUS or not */
    volatile apr_uint32_t panic;
    volatile apr_uint32_t checked; /* a check ended since the last judge */
    apr_time_t judged;             /* when panic was last judged */
    apr_pool_t *pool;
    bbs_panic_member_t *judge;     /* room for judging panic */
    int judge_cap;
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
    apr_interval_time_t interval; /* hcinterval the due time is from */
    int in_error;           /* PROXY_WORKER_IN_ERROR seen last tick */
    volatile apr_uint32_t busy;
    bbs_record_t rec;       /* last record written, owned like the pool */
} member_t;

struct bbs_checker_t {
    apr_pool_t *pool;
    apr_time_t last_tick;   /* 0: none yet (the ramps' clock) */
    server_rec *s;
    apr_hash_t *members;    /* by worker shared record */
    apr_hash_t *balancers;  /* by balancer shared record */
    apr_hash_t *unrecorded; /* members found no record for, said once */
    apr_array_header_t *order; /* balancer_t *, in configuration order */
    apr_thread_pool_t *tp;     /* for the life of the process, see top */
    int threads;
    apr_thread_mutex_t *lock;  /* serializes the entry points, per process */
    bbs_wake_t *wake;          /* runs wake_up on early probe requests */
};

static apr_interval_time_t interval_of(const member_t *m)
{
    apr_interval_time_t iv = m->w->s->interval;
    apr_interval_time_t fast = m->bal->set.fast_interval;

    if (fast && fast < iv && (m->w->s->pcount > 0 || m->w->s->fcount > 0)) {
        return fast;
    }
    return iv;
}

/* After a member's first check the next one comes between half an
 * interval and an interval later, the same offset for the member at every
 * start: first checks all run at once, and this spreads the farm's probes
 * over the interval from then on. */
static apr_interval_time_t next_interval(const member_t *m)
{
    apr_interval_time_t iv = interval_of(m);
    apr_uint32_t half_ms = (apr_uint32_t)apr_time_as_msec(iv / 2);

    if (m->rec.checks != 1 || !half_ms) {
        return iv;
    }
    return iv - apr_time_from_msec(bbs_hash(bbs_wname(m->w)) % half_ms);
}

static void record_of(const member_t *m, bbs_record_of_t *of)
{
    of->s = m->bal->s;
    of->b = m->bal->b;
    of->w = m->w;
    of->slot = m->slot;
    of->probe_url = m->probe_url;
}

static void *APR_THREAD_FUNC check_member(apr_thread_t *thread, void *data)
{
    member_t *m = data;
    apr_pool_t *p;
    bbs_probe_result_t pr;
    bbs_result_t r;
    bbs_record_of_t of;
    bbs_policy_out_t out;
    apr_time_t now;

    apr_pool_create(&p, m->pool);
    bbs_probe_run(m->hc, m->path, m->bal->s, m->bal->dir_config,
                  &m->bal->set, p, thread, &pr);
    bbs_decide(&m->bal->set.rules, &pr.answer, &r);
    now = apr_time_now();
    bbs_flags_step(m->w, m->slot, &m->bal->set, 1, &r, now, &out);
    bbs_ramp_note(m->bal->s, m->bal->b, m->w, m->slot, &m->bal->set,
                  m->rec.decision, out.decision, now);
    record_of(m, &of);
    bbs_record_check(&m->rec, &of, &pr, &r, &out, now);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, m->bal->s, BBSLOGNO(0011)
                 "checked %s member %s: %s, %s (%" APR_TIME_T_FMT
                 " us, passes %d/%d, fails %d/%d)",
                 m->bal->b->s->name, bbs_wname(m->w),
                 bbs_verdict_name(r.verdict), r.reason, pr.latency,
                 m->w->s->pcount, m->w->s->passes, m->w->s->fcount,
                 m->w->s->fails);
    apr_pool_destroy(p);
    m->interval = m->w->s->interval;
    m->due = m->launched + next_interval(m);
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
        bal->pool = ck->pool;
        bal->checked = 1;
        bal->s = s;
        bal->members = apr_array_make(ck->pool, 4, sizeof(member_t *));
        bal->dir_config = bbs_balancer_dir_config(ck->pool, s, b);
        bbs_settings_for(&bal->set, bal->dir_config);
        apr_hash_set(ck->balancers, &bal->key, sizeof(bal->key), bal);
        APR_ARRAY_PUSH(ck->order, balancer_t *) = bal;
    }
    return bal;
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
                         BBSLOGNO(0061) "%s member %s is not checked: all %"
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
    if (!bal->set.warmup.duration) {
        bbs_ramp_forget(slot); /* BBStatusWarmup off since a restart */
    }
    /* A checker taking over goes on from the last check in the shared
     * record. A member never checked is checked at once: it gets no
     * request before (it is a standby until then), so a start must not
     * keep it out for an interval. */
    m->interval = w->s->interval;
    m->due = m->rec.checked_at ? m->rec.checked_at + w->s->interval : now;
    apr_hash_set(ck->members, &m->key, sizeof(m->key), m);
    APR_ARRAY_PUSH(bal->members, member_t *) = m;
    ap_log_error(APLOG_MARK, APLOG_TRACE1, 0, bal->s,
                 BBSLOGNO(0012) "%s member %s: first check in %" APR_TIME_T_FMT
                 " ms, probing %s", bal->b->s->name, bbs_wname(w),
                 apr_time_as_msec(m->due - now), m->probe_url);
    return m;
}

static void schedule(checker_t *ck, member_t *m, apr_time_t now)
{
    int in_error = PROXY_WORKER_IS_ERROR(m->w) != 0;

    /* mod_proxy put the member in error (a refused connect, say) on a
     * request it then failed over to another member: post_request only
     * saw that other member, so ask for the probe here */
    if (in_error && !m->in_error) {
        bbs_shm_request_probe(m->slot);
    }
    m->in_error = in_error;
    if (apr_atomic_read32(&m->busy)) {
        /* a re-probe request waits until the running probe is done */
        return;
    }
    if (m->w->s->interval != m->interval) {
        /* hcinterval changed in balancer-manager: the next check is due
         * one new interval after the last one, not at the old due time,
         * and the schedule goes on from there */
        m->interval = m->w->s->interval;
        m->due = (m->rec.checked_at ? m->rec.checked_at : now)
                 + interval_of(m);
        if (m->due < now) {
            m->due = now;
        }
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
    apr_array_header_t *ws = bal->b->workers;
    int i, n = 0, panic;

    /* only a check, or a flag an administrator or mod_proxy_hcheck set on
     * another member, changes the answer: judge after checks, and at
     * least every second for the rest */
    if (!apr_atomic_xchg32(&bal->checked, 0)
        && now - bal->judged < apr_time_from_sec(1)) {
        return;
    }
    bal->judged = now;

    if (bal->judge_cap < ws->nelts + bal->members->nelts) {
        /* grows only with members added in balancer-manager */
        bal->judge_cap = ws->nelts + bal->members->nelts;
        bal->judge = apr_palloc(bal->pool, bal->judge_cap
                                               * sizeof(*bal->judge));
    }
    for (i = 0; i < ws->nelts; ++i) {
        proxy_worker *w = APR_ARRAY_IDX(ws, i, proxy_worker *);
        if (!bbs_method_is(w)) {
            bbs_panic_member_t *pm = &bal->judge[n++];
            memset(pm, 0, sizeof(*pm));
            pm->excluded = PROXY_WORKER_IS(w, PROXY_WORKER_DISABLED
                                                  | PROXY_WORKER_STOPPED);
            pm->usable = PROXY_WORKER_IS_USABLE(w);
        }
    }
    for (i = 0; i < bal->members->nelts; ++i) {
        member_t *m = APR_ARRAY_IDX(bal->members, i, member_t *);
        bbs_panic_member_t *pm = &bal->judge[n++];
        apr_uint32_t f = bbs_shm_flags(m->slot);

        memset(pm, 0, sizeof(*pm));
        pm->ours = bbs_method_is(m->w);
        pm->excluded = !pm->ours
                       || PROXY_WORKER_IS(m->w, PROXY_WORKER_DISABLED
                                                    | PROXY_WORKER_STOPPED);
        pm->down = (f & BBS_SLOT_DOWN) != 0;
        pm->failed = (f & BBS_SLOT_FAILED) != 0;
    }
    panic = bbs_policy_panic(bal->judge, n, bal->set.panic);
    if (panic != (int)apr_atomic_read32(&bal->panic)) {
        apr_atomic_set32(&bal->panic, (apr_uint32_t)panic);
        if (panic) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, bal->s, BBSLOGNO(0030)
                         "%s: every member failed its checks and "
                         "none said it is stopping; routing to all of them "
                         "until one passes (BBStatusPanic)", bal->b->s->name);
        }
        else {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, bal->s, BBSLOGNO(0031)
                         "%s: panic over, the checks decide again",
                         bal->b->s->name);
        }
    }
    for (i = 0; i < bal->members->nelts; ++i) {
        member_t *m = APR_ARRAY_IDX(bal->members, i, member_t *);
        bbs_shm_flag(m->slot, BBS_SLOT_PANIC, panic ? BBS_FLAG_SET
                                                    : BBS_FLAG_CLEAR);
        /* an idle member belongs to this thread until it is handed to a
         * probe again; a busy one is settled by its check. This also
         * re-applies every member's flags at a new generation's first
         * tick, as mod_proxy rebuilt them from the configuration. */
        if (bbs_method_is(m->w) && !apr_atomic_read32(&m->busy)) {
            bbs_record_of_t of;
            bbs_policy_out_t out;

            bbs_flags_step(m->w, m->slot, &m->bal->set, m->rec.checks > 0,
                           NULL, now, &out);
            record_of(m, &of);
            if (bbs_record_note(&m->rec, &of, out.decision, now)) {
                bbs_shm_write(m->slot, &m->rec);
            }
        }
    }
}

typedef struct {
    checker_t *ck;
    apr_time_t now;
} tick_t;

/* Whether a check of w, started while it was BBSTATUS, is in flight. */
static int busy_member(checker_t *ck, proxy_worker *w)
{
    member_t *m = apr_hash_get(ck->members, &w->s, sizeof(w->s));

    return m && apr_atomic_read32(&m->busy);
}

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

        bbs_slot_t *slot = m ? m->slot : bbs_shm_member(b, w, 0);

        bbs_park(w, slot, t->now);
        if (m && !PROXY_WORKER_IS(w, PROXY_WORKER_STOPPED)) {
            schedule(t->ck, m, t->now);
        }
        else if (!m && slot
                 && (bbs_shm_flags(slot) & (BBS_SLOT_MODULE_SET_STBY | BBS_SLOT_MODULE_SET_HCFL))
                 && !busy_member(t->ck, w)) {
            /* switched to another hcmethod: give back what was set here */
            bbs_policy_out_t out;

            bbs_flags_step(w, slot, NULL, 0, NULL, t->now, &out);
        }
    }
}

void bbs_checker_tick(bbs_checker_t *ck)
{
    tick_t t;
    int i;

    t.ck = ck;
    t.now = apr_time_now();
    bbs_each_balancer(ck->s, tick_balancer, &t);
    for (i = 0; i < ck->order->nelts; ++i) {
        balancer_t *bal = APR_ARRAY_IDX(ck->order, i, balancer_t *);

        judge_panic(bal, t.now);
        if (bal->set.warmup.duration) {
            bbs_ramp_tick(bal->s, bal->b, &bal->set, t.now,
                          ck->last_tick ? t.now - ck->last_tick : 0);
        }
    }
    ck->last_tick = t.now;
}

/* Early probe requests between ticks (mod_bbstatus_wake.c), under the
 * callback's lock: what a tick does for members already known. */
static void wake_up(void *data)
{
    checker_t *ck = data;
    apr_time_t now = apr_time_now();
    apr_hash_index_t *hi;

    /* a stopped checker has no pool: it stopped its wake-up too, but a
     * wake-up may have been waiting for the lock meanwhile */
    if (!ck->pool) {
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

typedef struct {
    apr_hash_t *seen;
    int slots;
} slots_t;

static void count_slots(server_rec *s, proxy_server_conf *conf,
                        proxy_balancer *b, void *baton)
{
    slots_t *c = baton;

    (void)s;
    (void)conf;
    /* a virtual host's copy of a balancer shares its members array */
    if (apr_hash_get(c->seen, &b->workers, sizeof(b->workers))) {
        return;
    }
    apr_hash_set(c->seen, &b->workers, sizeof(b->workers), b);
    c->slots += bbs_member_slots(b);
}

/* A member has one check in flight at most, so a thread per member slot
 * (growth included: members added in balancer-manager) is all that can
 * ever run at once. More would sit idle, and not for free: with
 * ExtendedStatus, httpd calls times() for every request, whose cost in
 * the kernel grows with the threads of the process. */
static int threads_needed(checker_t *ck)
{
    slots_t c;

    c.seen = apr_hash_make(ck->pool);
    c.slots = 0;
    bbs_each_balancer(ck->s, count_slots, &c);
    return c.slots < 1 ? 1 : c.slots < ck->threads ? c.slots : ck->threads;
}

void bbs_checker_start(bbs_checker_t *ck)
{
    apr_pool_t *tp_pool;
    apr_status_t rv;
    int threads;

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
    threads = threads_needed(ck);
    rv = apr_thread_pool_create(&ck->tp, (apr_size_t)threads,
                                (apr_size_t)threads, tp_pool);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, rv, ck->s,
                     BBSLOGNO(0040) "no thread pool of %d threads; probes run "
                     "one after the other", threads);
        ck->tp = NULL;
    }
}

void bbs_checker_stop(bbs_checker_t *ck)
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

int bbs_checker_running(const bbs_checker_t *ck)
{
    return ck->pool != NULL;
}

bbs_checker_t *bbs_checker_create(apr_pool_t *pconf, server_rec *s,
                                  int threads, apr_thread_mutex_t *lock)
{
    checker_t *ck = apr_pcalloc(pconf, sizeof(*ck));

    ck->s = s;
    ck->threads = threads;
    ck->lock = lock;
    return ck;
}
