/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The warm-up ramp (BBStatusWarmup): a member that comes back into
 * rotation after being out takes a share of the new, routeless requests
 * that grows from a floor to its full share. The ramp follows how the
 * member answers: its time advances while the member answers about as
 * fast as its peers and goes back while it is much slower, so a cold JVM
 * gets few requests until its answers say it can take more, and a node
 * that is merely restarted fast gets its share in the configured time.
 * Pure arithmetic on times, free of httpd and table-tested.
 */
#ifndef BBS_WARMUP_H
#define BBS_WARMUP_H

#include <apr.h>
#include <apr_time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BBS_SHARE_FULL 1000u  /* shares are in thousandths */
/* slower than this many times its peers' answers, and by more than
 * BBS_WARM_SLOW_MIN_US (below that, a few milliseconds of connection set-up
 * on a LAN is no cold JVM): the ramp goes back */
#define BBS_WARM_SLOW_RATIO 2u
#define BBS_WARM_SLOW_MIN_US 5000u
/* after this many durations the ramp ends whatever the answers say */
#define BBS_WARM_GIVE_UP 3

typedef struct bbs_warmup_conf_t {
    apr_interval_time_t duration; /* 0: no ramp */
    unsigned floor;               /* share at the start, thousandths */
} bbs_warmup_conf_t;

typedef enum {
    BBS_WARM_RAMPING = 0, /* the share grows */
    BBS_WARM_HELD,        /* answers too slow: the share goes back */
    BBS_WARM_DONE,        /* full share, through the ramp */
    BBS_WARM_GAVE_UP      /* full share: still slow after GIVE_UP ramps */
} bbs_warm_state_e;

typedef struct bbs_warmup_in_t {
    apr_interval_time_t progress; /* ramp time done so far */
    apr_interval_time_t elapsed;  /* since the member came back */
    apr_interval_time_t dt;       /* since the last step */
    apr_uint32_t member_us;       /* its answer time, 0: not known yet */
    apr_uint32_t peers_us;        /* its peers', 0: not known */
} bbs_warmup_in_t;

typedef struct bbs_warmup_out_t {
    apr_interval_time_t progress;
    unsigned share;               /* thousandths of its full share */
    bbs_warm_state_e state;
} bbs_warmup_out_t;

void bbs_warmup_step(const bbs_warmup_conf_t *c, const bbs_warmup_in_t *in,
                     bbs_warmup_out_t *out);

/* Whether a request whose draw is `draw` (0..BBS_SHARE_FULL-1, uniform)
 * may go to a member holding `share`. */
int bbs_warmup_admits(unsigned share, unsigned draw);

/* The median of n answer times, 0s (not known) left out; 0 when none is
 * known. Sorts `us` in place. */
apr_uint32_t bbs_warmup_median(apr_uint32_t *us, int n);

/* An answer time folded into a running average (1/8 weight); the first
 * one is taken as it is. */
apr_uint32_t bbs_warmup_ewma(apr_uint32_t avg, apr_uint32_t sample_us);

#ifdef __cplusplus
}
#endif

#endif /* BBS_WARMUP_H */
