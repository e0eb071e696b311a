/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Keeping BBSTATUS members parked away from mod_proxy_hcheck. Once the
 * BBSTATUS row exists (mod_bbstatus_method.c), mod_proxy_hcheck would try
 * to run the method itself and log AH03257 every interval. It checks a
 * member once its "updated" stamp plus the interval has passed, so
 * BBSTATUS members are kept parked with a stamp that never comes due and
 * checked by the module instead; a member switched to another method gets
 * a fresh stamp back so mod_proxy_hcheck resumes with it. (A stamp of 0,
 * "check in flight" to mod_proxy_hcheck since 2.4.48, would be checked at
 * once by older releases.)
 */
#include "mod_bbstatus_config.h"
#include "mod_bbstatus_method.h"
#include "mod_bbstatus_shm.h"
#include "mod_bbstatus_park.h"

/* Far enough to never come due, with room for mod_proxy_hcheck to add
 * any interval without overflowing (about 146,000 years). */
#define PARKED_STAMP APR_INT64_C(0x3fffffffffffffff)

void bbs_park(proxy_worker *w, bbs_slot_t *slot, apr_time_t now)
{
    if (bbs_method_is(w)) {
        if (w->s->updated != PARKED_STAMP) {
            w->s->updated = PARKED_STAMP;
        }
        if (slot) {
            bbs_shm_flag(slot, BBS_SLOT_PARKED, BBS_FLAG_SET);
        }
    }
    else if (slot && bbs_shm_flag(slot, BBS_SLOT_PARKED, BBS_FLAG_CLEAR)) {
        /* handed back: mod_proxy_hcheck checks it one interval from now */
        w->s->updated = now;
    }
}

static void park_member(proxy_balancer *b, proxy_worker *w, void *baton)
{
    bbs_park(w, bbs_shm_member(b, w, 0), *(apr_time_t *)baton);
}

static void keep_parked(proxy_balancer *b, proxy_worker *w, void *baton)
{
    (void)b;
    (void)baton;
    if (bbs_method_is(w) && w->s->updated != PARKED_STAMP) {
        w->s->updated = PARKED_STAMP;
    }
}

void bbs_park_keep(server_rec *s)
{
    bbs_each_member(s, keep_parked, NULL);
}

void bbs_park_all(server_rec *s)
{
    apr_time_t now = apr_time_now();

    bbs_each_member(s, park_member, &now);
}

void bbs_park_child_init(apr_pool_t *p, server_rec *s)
{
    (void)p;
    bbs_park_all(s);
}
