/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Member records in anonymous shared segments, created by the parent and
 * inherited by every child. They hang off the process pool, so records
 * survive graceful restarts and a checking child that goes away; they are
 * gone with the parent, so nothing is left behind after a stop.
 *
 * The records live in a segment made afresh for every generation: its
 * post_config copies the records of the members it configures from the
 * previous one, and the parent lets the previous one go. Members no longer
 * configured so leave nothing behind, and a child of an older generation
 * that still finishes a probe writes into its own generation's segment,
 * which it keeps mapped until it exits and which nobody reads or reuses:
 * no late write can land in a slot another member owns now.
 *
 * Within a generation slots are found by open addressing on a hash of the
 * member's key and never freed; the segment is sized for every member the
 * configuration can hold, BalancerGrowth included. A key names the
 * balancer object too (see owner_of), so a balancer defined separately in
 * two virtual hosts gets two records.
 *
 * Each record is guarded by a sequence lock (bbs_seqlock): the one check
 * that writes it makes the count odd while it copies, and readers retry
 * until they copy a record whose count was even and unchanged, so nobody
 * sees the state of one check with the reason of another.
 */
#include <string.h>

#include "apr_atomic.h"
#include "apr_shm.h"
#include "apr_strings.h"
#include "apr_thread_proc.h"

#include "bbs_seqlock.h"
#include "bbs_warmup.h"
#include "mod_bbstatus_config.h"
#include "mod_bbstatus_method.h"
#include "mod_bbstatus_shm.h"

#define SHM_USERDATA "mod_bbstatus-records"
#define SLOT_FREE 0
#define SLOT_CLAIMING 1
#define SLOT_USED 2
#define OWNER_LEN 24
#ifdef PROXY_WORKER_EXT_NAME_SIZE
#define KEY_LEN (OWNER_LEN + PROXY_BALANCER_MAX_NAME_SIZE \
                 + PROXY_WORKER_EXT_NAME_SIZE)
#else
#define KEY_LEN (OWNER_LEN + PROXY_BALANCER_MAX_NAME_SIZE \
                 + PROXY_WORKER_MAX_NAME_SIZE)
#endif
#define READ_TRIES 10000
#define WRITE_STUCK apr_time_from_msec(100)

struct bbs_slot_t {
    volatile apr_uint32_t seq;
    volatile apr_uint32_t used;
    volatile apr_uint32_t reprobe;
    volatile apr_uint32_t flags; /* BBS_SLOT_* */
    volatile apr_uint32_t gen;   /* of the module's flags, see bbs_shm_gen */
    /* BBStatusWarmup: the member's answer time, written by the children
     * that proxy its requests; its ramp, written by the checker */
    volatile apr_uint32_t latency_us;
    volatile apr_uint32_t warm_share;       /* 0: not warming */
    volatile apr_uint32_t warm_progress_ms;
    volatile apr_uint32_t warm_start_s;     /* Unix time it came back */
    volatile apr_uint32_t warm_duration_ms; /* the ramp's BBStatusWarmup */
    volatile apr_uint32_t warm_held;        /* answers too slow: held */
    volatile apr_uint32_t routed;           /* requests it served, ever */
    volatile apr_uint32_t routed_seen;      /* ... as the checker saw last */
    volatile apr_uint32_t warm_budget;      /* requests it may take until
                                               the checker's next tick */
    apr_uint32_t hash;
    char key[KEY_LEN];
    bbs_record_t rec;
};

/* Kept in the process pool across generations; each generation's
 * children get their own copy at fork, so the parent may replace the
 * records while older children still use theirs. */
typedef struct {
    apr_shm_t *shm;     /* this generation's records */
    bbs_slot_t *slots;
    apr_size_t n;
} segment_t;

/* Set in the parent before children fork; read-only afterwards. */
static segment_t *seg;
/* Which server's balancer owns a members array (see owner_of); built with
 * seg, read-only afterwards. */
static apr_hash_t *owners;

apr_uint32_t bbs_hash(const char *key)
{
    apr_uint32_t h = 2166136261u;

    for (; *key; ++key) {
        h = (h ^ (unsigned char)*key) * 16777619u;
    }
    return h;
}

/* What tells one balancer object from another of the same name: mod_proxy
 * gives a virtual host a copy of the main server's balancer that shares
 * its members array and its workers (one balancer), while a <Proxy>
 * section read in two virtual hosts makes two balancers with workers and
 * shared memory of their own. The id of the first server holding the
 * array names it, and stays the same across restarts. */
static const char *owner_of(const proxy_balancer *b)
{
    const char *id = owners ? apr_hash_get(owners, &b->workers,
                                           sizeof(b->workers))
                            : NULL;

    /* balancers are never added at run time in 2.4: only a balancer seen
     * by no post_config (none) would fall back to its own shared name */
    return id ? id : b->s->sname;
}

static void make_key(char *key, const proxy_balancer *b,
                     const proxy_worker *w)
{
    apr_snprintf(key, KEY_LEN, "%.*s %s %s", OWNER_LEN - 1, owner_of(b),
                 b->s->name, bbs_wname(w));
}

static bbs_slot_t *lookup(segment_t *sg, const char *key, apr_uint32_t h,
                          int create)
{
    apr_size_t i, start;

    if (!sg || !sg->n) {
        return NULL;
    }
    start = h % sg->n;
    for (i = 0; i < sg->n; ++i) {
        bbs_slot_t *s = &sg->slots[(start + i) % sg->n];
        apr_uint32_t u = apr_atomic_read32(&s->used);
        int wait;

        /* a slot being claimed holds its key a moment later: passing it
         * by could claim a second slot for the same member */
        for (wait = 0; u == SLOT_CLAIMING && wait < READ_TRIES; ++wait) {
            apr_thread_yield();
            u = apr_atomic_read32(&s->used);
        }
        if (u == SLOT_USED) {
            if (s->hash == h && !strcmp(s->key, key)) {
                return s;
            }
            continue;
        }
        if (u == SLOT_CLAIMING) {
            continue;
        }
        if (!create) {
            return NULL;
        }
        if (apr_atomic_cas32(&s->used, SLOT_CLAIMING, SLOT_FREE)
            == SLOT_FREE) {
            s->hash = h;
            apr_cpystrn(s->key, key, sizeof(s->key));
            apr_atomic_set32(&s->used, SLOT_USED);
            return s;
        }
    }
    return NULL;
}

bbs_slot_t *bbs_shm_member(const proxy_balancer *b, const proxy_worker *w,
                           int create)
{
    char key[KEY_LEN];

    make_key(key, b, w);
    return lookup(seg, key, bbs_hash(key), create);
}

apr_size_t bbs_shm_capacity(void)
{
    return seg ? seg->n : 0;
}

void bbs_shm_write(bbs_slot_t *slot, const bbs_record_t *rec)
{
    bbs_seqlock_write(&slot->seq, &slot->rec, rec, sizeof(*rec),
                      WRITE_STUCK);
}

int bbs_shm_read(bbs_slot_t *slot, bbs_record_t *rec)
{
    return bbs_seqlock_read(&slot->seq, rec, &slot->rec, sizeof(*rec),
                            READ_TRIES);
}

int bbs_shm_request_probe(bbs_slot_t *slot)
{
    /* read first: under a storm of failures the flag is up, and a write
     * from every request would bounce the line between processes */
    return !apr_atomic_read32(&slot->reprobe)
           && apr_atomic_xchg32(&slot->reprobe, 1) == 0;
}

int bbs_shm_take_probe_request(bbs_slot_t *slot)
{
    /* read before writing: the checker asks every tick, and a write to
     * every slot would bounce cache lines between processes */
    return apr_atomic_read32(&slot->reprobe)
           && apr_atomic_xchg32(&slot->reprobe, 0) != 0;
}

apr_uint32_t bbs_shm_latency(bbs_slot_t *slot)
{
    return apr_atomic_read32(&slot->latency_us);
}

void bbs_shm_note_latency(bbs_slot_t *slot, apr_uint32_t sample_us)
{
    int tries;

    /* a few tries: under contention a lost sample of an average costs
     * nothing, a request spinning here would */
    for (tries = 0; tries < 4; ++tries) {
        apr_uint32_t old = apr_atomic_read32(&slot->latency_us);

        if (apr_atomic_cas32(&slot->latency_us,
                             bbs_warmup_ewma(old, sample_us), old) == old) {
            return;
        }
    }
}

void bbs_shm_count_routed(bbs_slot_t *slot)
{
    apr_atomic_inc32(&slot->routed);
}

apr_uint32_t bbs_shm_routed_since(bbs_slot_t *slot)
{
    apr_uint32_t now = apr_atomic_read32(&slot->routed);

    /* unsigned arithmetic: the counter may wrap */
    return now - apr_atomic_xchg32(&slot->routed_seen, now);
}

void bbs_shm_set_warm_budget(bbs_slot_t *slot, apr_uint32_t n)
{
    apr_atomic_set32(&slot->warm_budget, n);
}

apr_uint32_t bbs_shm_warm_budget(bbs_slot_t *slot)
{
    return apr_atomic_read32(&slot->warm_budget);
}

int bbs_shm_take_warm_budget(bbs_slot_t *slot)
{
    int tries;

    for (tries = 0; tries < 8; ++tries) {
        apr_uint32_t left = apr_atomic_read32(&slot->warm_budget);

        if (!left) {
            return 0;
        }
        if (apr_atomic_cas32(&slot->warm_budget, left - 1, left) == left) {
            return 1;
        }
    }
    return 0;
}

void bbs_shm_forget_latency(bbs_slot_t *slot)
{
    apr_atomic_set32(&slot->latency_us, 0);
}

void bbs_shm_warm(bbs_slot_t *slot, bbs_shm_warm_t *out)
{
    out->share = apr_atomic_read32(&slot->warm_share);
    out->progress_ms = apr_atomic_read32(&slot->warm_progress_ms);
    out->start_s = apr_atomic_read32(&slot->warm_start_s);
    out->duration_ms = apr_atomic_read32(&slot->warm_duration_ms);
    out->held = apr_atomic_read32(&slot->warm_held);
}

unsigned bbs_shm_warm_share(bbs_slot_t *slot)
{
    apr_uint32_t share = apr_atomic_read32(&slot->warm_share);

    return share ? share : BBS_SHARE_FULL;
}

void bbs_shm_set_warm(bbs_slot_t *slot, const bbs_shm_warm_t *w)
{
    /* one writer, the checker; readers take each field as it is, and a
     * share read with the previous progress is as good as the next */
    apr_atomic_set32(&slot->warm_start_s, w->start_s);
    apr_atomic_set32(&slot->warm_duration_ms, w->duration_ms);
    apr_atomic_set32(&slot->warm_held, w->held);
    apr_atomic_set32(&slot->warm_progress_ms, w->progress_ms);
    apr_atomic_set32(&slot->warm_share, w->share);
}

apr_uint32_t bbs_shm_flags(bbs_slot_t *slot)
{
    return apr_atomic_read32(&slot->flags);
}

int bbs_shm_flag(bbs_slot_t *slot, apr_uint32_t bit, int op)
{
    apr_uint32_t old, now;

    do {
        old = apr_atomic_read32(&slot->flags);
        if (op < 0) {
            return (old & bit) != 0;
        }
        now = op ? (old | bit) : (old & ~bit);
    } while (now != old && apr_atomic_cas32(&slot->flags, now, old) != old);
    return (old & bit) != 0;
}

void bbs_shm_set_flags(bbs_slot_t *slot, apr_uint32_t mask,
                       apr_uint32_t bits)
{
    apr_uint32_t old, now;

    do {
        old = apr_atomic_read32(&slot->flags);
        now = (old & ~mask) | (bits & mask);
    } while (now != old && apr_atomic_cas32(&slot->flags, now, old) != old);
}

apr_uint32_t bbs_shm_gen(bbs_slot_t *slot)
{
    return apr_atomic_read32(&slot->gen);
}

void bbs_shm_set_gen(bbs_slot_t *slot, apr_uint32_t gen)
{
    apr_atomic_set32(&slot->gen, gen);
}

/* Room for every member a balancer may ever hold, BalancerGrowth
 * included, plus a margin for balancers added through the manager. */
static void count_slots(server_rec *s, proxy_server_conf *conf,
                        proxy_balancer *b, void *baton)
{
    (void)s;
    (void)conf;
    *(apr_size_t *)baton += (apr_size_t)bbs_member_slots(b);
}

static apr_size_t slots_needed(server_rec *s)
{
    apr_size_t n = 16;

    bbs_each_balancer(s, count_slots, &n);
    /* open addressing stays fast while at most half full */
    return n * 2;
}

static void note_owner(server_rec *s, proxy_server_conf *conf,
                       proxy_balancer *b, void *baton)
{
    (void)s;
    if (!apr_hash_get(owners, &b->workers, sizeof(b->workers))) {
        apr_hash_set(owners, &b->workers, sizeof(b->workers),
                     apr_pstrdup(baton, conf->id ? conf->id : "-"));
    }
}

typedef struct {
    bbs_slot_t *from_slots; /* the previous generation's, or NULL */
    apr_size_t from_n;
} carry_t;

/* Claims the slot of a configured member in the new segment and carries
 * its record over, so a member that stays keeps its history. Old children
 * may still write the old record: the copy is taken whole, under its
 * sequence lock, and whatever they write later stays in their segment. */
static void claim_member(proxy_balancer *b, proxy_worker *w, void *baton)
{
    carry_t *c = baton;
    char key[KEY_LEN];
    apr_uint32_t h;
    bbs_slot_t *n, *o;
    segment_t old;

    if (!bbs_method_is(w)) {
        return;
    }
    make_key(key, b, w);
    h = bbs_hash(key);
    n = lookup(seg, key, h, 1);
    if (!n || !c->from_slots) {
        return;
    }
    memset(&old, 0, sizeof(old));
    old.slots = c->from_slots;
    old.n = c->from_n;
    o = lookup(&old, key, h, 0);
    if (o && bbs_shm_read(o, &n->rec)) {
        n->flags = apr_atomic_read32(&o->flags);
        n->gen = apr_atomic_read32(&o->gen);
        n->reprobe = apr_atomic_read32(&o->reprobe);
        /* a ramp goes on across a graceful restart where it was */
        n->latency_us = apr_atomic_read32(&o->latency_us);
        n->warm_share = apr_atomic_read32(&o->warm_share);
        n->warm_progress_ms = apr_atomic_read32(&o->warm_progress_ms);
        n->warm_start_s = apr_atomic_read32(&o->warm_start_s);
        n->warm_duration_ms = apr_atomic_read32(&o->warm_duration_ms);
        n->warm_held = apr_atomic_read32(&o->warm_held);
    }
}

int bbs_shm_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_pool_t *ppool = s->process->pool;
    segment_t *sg = NULL;
    apr_shm_t *old_shm;
    apr_size_t need = slots_needed(s);
    carry_t carry;
    apr_status_t rv;

    apr_pool_userdata_get((void **)&sg, SHM_USERDATA, ppool);
    if (!sg) {
        sg = apr_pcalloc(ppool, sizeof(*sg));
        apr_pool_userdata_set(sg, SHM_USERDATA, apr_pool_cleanup_null,
                              ppool);
    }
    old_shm = sg->shm;
    carry.from_slots = sg->slots;
    carry.from_n = sg->n;
    rv = apr_shm_create(&sg->shm, need * sizeof(bbs_slot_t), NULL, ppool);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     BBSLOGNO(0002) "cannot create shared memory for %"
                     APR_SIZE_T_FMT " member records", need);
        sg->shm = old_shm;
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    sg->slots = apr_shm_baseaddr_get(sg->shm);
    sg->n = need;
    memset(sg->slots, 0, need * sizeof(bbs_slot_t));
    seg = sg;
    owners = apr_hash_make(pconf);
    bbs_each_balancer(s, note_owner, pconf);
    /* only here, in the parent before any child of this generation
     * exists, are configured members claimed; at run time only the
     * checker claims (members added in balancer-manager) */
    bbs_each_member(s, claim_member, &carry);
    if (old_shm) {
        /* unmaps the parent's view only: older children keep theirs */
        apr_shm_destroy(old_shm);
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, BBSLOGNO(0003)
                 "shared records for %" APR_SIZE_T_FMT " members",
                 need);
    return OK;
}
