/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Member records in one anonymous shared segment, created by the parent
 * and inherited by every child. It hangs off the process pool, so records
 * survive graceful restarts and a checking child that goes away; it is
 * gone with the parent, so nothing is left behind after a stop.
 *
 * The segment also holds the checker's lease: the child that renews it
 * every tick checks; when it stops renewing (it exits, is killed, or is
 * shutting down), another child takes it over.
 *
 * Slots are found by open addressing on a hash of "balancer member" and
 * never freed. Each record is guarded by a sequence lock: the one check
 * that writes it makes the count odd while it copies, and readers retry
 * until they copy a record whose count was even and unchanged, so nobody
 * sees the state of one check with the reason of another.
 */
#include <string.h>

#include "apr_atomic.h"
#include "apr_shm.h"
#include "apr_strings.h"
#include "apr_thread_proc.h"

#include "mod_bbstatus_private.h"

#define SHM_USERDATA "mod_bbstatus-shm"
#define SLOT_FREE 0
#define SLOT_CLAIMING 1
#define SLOT_USED 2
#define KEY_LEN (PROXY_BALANCER_MAX_NAME_SIZE + PROXY_WORKER_EXT_NAME_SIZE)
#define READ_TRIES 10000

struct bbs_slot_t {
    volatile apr_uint32_t seq;
    volatile apr_uint32_t used;
    volatile apr_uint32_t reprobe;
    volatile apr_uint32_t flags; /* BBS_SLOT_* */
    volatile apr_uint32_t gen;   /* of the module's flags, see bbs_shm_gen */
    apr_uint32_t hash;
    char key[KEY_LEN];
    bbs_record_t rec;
};

/* The checker's lease: owner pid in the high half, last renewal in 10 ms
 * units in the low half, one word so that it changes hands atomically. */
typedef struct {
    volatile apr_uint64_t lease;
    char pad[56];
} header_t;

typedef struct {
    apr_shm_t *shm;
    header_t *header;
    bbs_slot_t *slots;
    apr_size_t n;
} segment_t;

/* Set in the parent before children fork; read-only afterwards. */
static segment_t *seg;

apr_uint32_t bbs_hash(const char *key)
{
    apr_uint32_t h = 2166136261u;

    for (; *key; ++key) {
        h = (h ^ (unsigned char)*key) * 16777619u;
    }
    return h;
}

static void make_key(char *key, const char *balancer, const char *member)
{
    apr_snprintf(key, KEY_LEN, "%s %s", balancer, member);
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

bbs_slot_t *bbs_shm_find(const char *balancer, const char *member,
                         int create)
{
    char key[KEY_LEN];

    make_key(key, balancer, member);
    return lookup(seg, key, bbs_hash(key), create);
}

apr_size_t bbs_shm_capacity(void)
{
    return seg ? seg->n : 0;
}

void bbs_shm_write(bbs_slot_t *slot, const bbs_record_t *rec)
{
    apr_uint32_t seq;

    /* Writers take turns: a checker that just lost its lease may finish a
     * probe while the new one writes the same record. */
    for (;;) {
        seq = apr_atomic_read32(&slot->seq);
        if (!(seq & 1) && apr_atomic_cas32(&slot->seq, seq + 1, seq) == seq) {
            break;
        }
        apr_thread_yield();
    }
    memcpy(&slot->rec, rec, sizeof(*rec));
    apr_atomic_inc32(&slot->seq);
}

int bbs_shm_lease(apr_uint32_t me, apr_time_t now, apr_interval_time_t ttl)
{
    apr_uint64_t cur, mine;
    apr_uint32_t owner, beat, t = (apr_uint32_t)(now / 10000);

    if (!seg) {
        return 0;
    }
    cur = apr_atomic_read64(&seg->header->lease);
    owner = (apr_uint32_t)(cur >> 32);
    beat = (apr_uint32_t)cur;
    if (owner != me && owner != 0
        && (apr_interval_time_t)(apr_uint32_t)(t - beat) * 10000 <= ttl) {
        return 0;
    }
    mine = ((apr_uint64_t)me << 32) | t;
    return apr_atomic_cas64(&seg->header->lease, mine, cur) == cur;
}

void bbs_shm_lease_release(apr_uint32_t me)
{
    apr_uint64_t cur;

    if (!seg) {
        return;
    }
    cur = apr_atomic_read64(&seg->header->lease);
    if ((apr_uint32_t)(cur >> 32) == me) {
        apr_atomic_cas64(&seg->header->lease, 0, cur);
    }
}

int bbs_shm_read(bbs_slot_t *slot, bbs_record_t *rec)
{
    int i;

    for (i = 0; i < READ_TRIES; ++i) {
        /* an atomic add of 0 is a full barrier around the copy */
        apr_uint32_t before = apr_atomic_add32(&slot->seq, 0);

        if (before & 1) {
            apr_thread_yield();
            continue;
        }
        memcpy(rec, &slot->rec, sizeof(*rec));
        if (apr_atomic_add32(&slot->seq, 0) == before) {
            return 1;
        }
    }
    return 0;
}

void bbs_shm_request_probe(bbs_slot_t *slot)
{
    apr_atomic_set32(&slot->reprobe, 1);
}

int bbs_shm_take_probe_request(bbs_slot_t *slot)
{
    /* read before writing: the checker asks every tick, and a write to
     * every slot would bounce cache lines between processes */
    return apr_atomic_read32(&slot->reprobe)
           && apr_atomic_xchg32(&slot->reprobe, 0) != 0;
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
    *(apr_size_t *)baton += (apr_size_t)(b->max_workers > b->workers->nelts
                                             ? b->max_workers
                                             : b->workers->nelts);
}

static apr_size_t slots_needed(server_rec *s)
{
    apr_size_t n = 16;

    bbs_each_balancer(s, count_slots, &n);
    /* open addressing stays fast while at most half full */
    return n * 2;
}

static apr_status_t create_segment(segment_t **out, apr_size_t n,
                                   apr_pool_t *pool)
{
    segment_t *sg = apr_pcalloc(pool, sizeof(*sg));
    apr_status_t rv;

    rv = apr_shm_create(&sg->shm, sizeof(header_t) + n * sizeof(bbs_slot_t),
                        NULL, pool);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    sg->header = apr_shm_baseaddr_get(sg->shm);
    sg->slots = (bbs_slot_t *)(sg->header + 1);
    sg->n = n;
    memset(sg->header, 0, sizeof(header_t) + n * sizeof(bbs_slot_t));
    *out = sg;
    return APR_SUCCESS;
}

static void claim_member(proxy_balancer *b, proxy_worker *w, void *baton)
{
    (void)baton;
    if (bbs_method_is(w)) {
        bbs_shm_find(b->s->name, w->s->name_ex, 1);
    }
}

/* Slots of configured members are claimed here, in the parent, before
 * any child exists; at run time only the checker claims (members added
 * in balancer-manager). */
static void claim_configured(server_rec *s)
{
    bbs_each_member(s, claim_member, NULL);
}

int bbs_shm_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_pool_t *ppool = s->process->pool;
    segment_t *old = NULL, *sg;
    apr_size_t need = slots_needed(s), i;
    apr_status_t rv;

    (void)pconf;
    apr_pool_userdata_get((void **)&old, SHM_USERDATA, ppool);
    if (old && old->n >= need) {
        seg = old;
        claim_configured(s);
        return OK;
    }
    rv = create_segment(&sg, need, ppool);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s,
                     "BBS0002: cannot create shared memory for %"
                     APR_SIZE_T_FMT " member records", need);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (old) {
        /* the configuration grew: carry the records over, then let the
         * old segment go (children of the old generation keep their own
         * mapping until they exit) */
        for (i = 0; i < old->n; ++i) {
            bbs_slot_t *o = &old->slots[i], *n;
            if (o->used != SLOT_USED) {
                continue;
            }
            n = lookup(sg, o->key, o->hash, 1);
            if (n) {
                memcpy(&n->rec, &o->rec, sizeof(n->rec));
                n->flags = o->flags;
                n->gen = o->gen;
            }
        }
        apr_shm_destroy(old->shm);
    }
    apr_pool_userdata_set(sg, SHM_USERDATA, apr_pool_cleanup_null, ppool);
    seg = sg;
    claim_configured(s);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 "BBS0003: shared records for %" APR_SIZE_T_FMT " members",
                 need);
    return OK;
}
