/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The warm-up ramp's arithmetic (see bbs_warmup.h).
 */
#include <stdlib.h>

#include "bbs_warmup.h"

static int slower(const bbs_warmup_in_t *in)
{
    /* not known yet counts as slow: nothing says the member can take
     * more; its floor share brings the first answers */
    if (!in->member_us) {
        return in->peers_us != 0;
    }
    return in->peers_us
           && (apr_uint64_t)in->member_us
                  > (apr_uint64_t)in->peers_us * BBS_WARM_SLOW_RATIO
           && in->member_us - in->peers_us > BBS_WARM_SLOW_MIN_US;
}

void bbs_warmup_step(const bbs_warmup_conf_t *c, const bbs_warmup_in_t *in,
                     bbs_warmup_out_t *out)
{
    unsigned floor = c->floor < BBS_SHARE_FULL ? c->floor : BBS_SHARE_FULL;
    int slow = slower(in);

    out->progress = in->progress;
    if (c->duration <= 0) {
        out->share = BBS_SHARE_FULL;
        out->state = BBS_WARM_DONE;
        return;
    }
    if (in->elapsed >= c->duration * BBS_WARM_GIVE_UP) {
        out->share = BBS_SHARE_FULL;
        out->state = slow ? BBS_WARM_GAVE_UP : BBS_WARM_DONE;
        return;
    }
    /* a slow member gives ramp time back: the share settles where the
     * member answers like its peers instead of swinging floor to top */
    out->progress += slow ? -in->dt : in->dt;
    if (out->progress < 0) {
        out->progress = 0;
    }
    if (out->progress >= c->duration) {
        out->progress = c->duration;
        out->share = BBS_SHARE_FULL;
        out->state = BBS_WARM_DONE;
        return;
    }
    out->share = floor
                 + (unsigned)((apr_uint64_t)(BBS_SHARE_FULL - floor)
                              * (apr_uint64_t)out->progress
                              / (apr_uint64_t)c->duration);
    out->state = slow ? BBS_WARM_HELD : BBS_WARM_RAMPING;
}

int bbs_warmup_admits(unsigned share, unsigned draw)
{
    return draw < share;
}

static int cmp_u32(const void *a, const void *b)
{
    apr_uint32_t x = *(const apr_uint32_t *)a, y = *(const apr_uint32_t *)b;

    return x < y ? -1 : x > y;
}

apr_uint32_t bbs_warmup_median(apr_uint32_t *us, int n)
{
    int i, k = 0;

    for (i = 0; i < n; ++i) {
        if (us[i]) {
            us[k++] = us[i];
        }
    }
    if (!k) {
        return 0;
    }
    qsort(us, (size_t)k, sizeof(*us), cmp_u32);
    return k % 2 ? us[k / 2]
                 : (apr_uint32_t)(((apr_uint64_t)us[k / 2 - 1] + us[k / 2])
                                  / 2);
}

apr_uint32_t bbs_warmup_ewma(apr_uint32_t avg, apr_uint32_t sample_us)
{
    if (!sample_us) {
        sample_us = 1; /* 0 means "not known" */
    }
    if (!avg) {
        return sample_us;
    }
    return (apr_uint32_t)(((apr_uint64_t)avg * 7 + sample_us) / 8);
}
