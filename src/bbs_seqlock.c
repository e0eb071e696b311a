/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include <string.h>

#include <apr_atomic.h>
#include <apr_thread_proc.h>

#include "bbs_seqlock.h"

int bbs_seqlock_write_try(volatile apr_uint32_t *seq, bbs_seqlock_wait_t *w,
                          apr_time_t now, apr_interval_time_t limit)
{
    apr_uint32_t s = apr_atomic_read32(seq);

    /* Writers take turns: a checker that just lost its lease may finish a
     * probe while the new one writes the same record. A copy takes
     * microseconds; a count odd for longer than limit belongs to a writer
     * that died in the middle (a child killed by the MPM), and is taken
     * over rather than waited for: otherwise the record, and every
     * reader, would stay stuck for the life of the segment. Taking over
     * adds two, so the count stays odd and the dead writer's value is
     * never seen again. */
    if (!(s & 1)) {
        if (apr_atomic_cas32(seq, s + 1, s) == s) {
            return 1;
        }
        w->since = 0;
    }
    else if (s != w->seen || !w->since) {
        w->seen = s;
        w->since = now;
    }
    else if (now - w->since > limit && apr_atomic_cas32(seq, s + 2, s) == s) {
        return 1;
    }
    return 0;
}

void bbs_seqlock_write_end(volatile apr_uint32_t *seq)
{
    apr_atomic_inc32(seq);
}

int bbs_seqlock_read_begin(volatile apr_uint32_t *seq, apr_uint32_t *before)
{
    /* an atomic add of 0 is a full barrier before the copy */
    *before = apr_atomic_add32(seq, 0);
    return !(*before & 1);
}

int bbs_seqlock_read_end(volatile apr_uint32_t *seq, apr_uint32_t before)
{
    /* and after it */
    return apr_atomic_add32(seq, 0) == before;
}

void bbs_seqlock_write(volatile apr_uint32_t *seq, void *dst,
                       const void *src, apr_size_t len,
                       apr_interval_time_t limit)
{
    bbs_seqlock_wait_t w = {0, 0};

    while (!bbs_seqlock_write_try(seq, &w, apr_time_now(), limit)) {
        apr_thread_yield();
    }
    memcpy(dst, src, len);
    bbs_seqlock_write_end(seq);
}

int bbs_seqlock_read(volatile apr_uint32_t *seq, void *dst, const void *src,
                     apr_size_t len, int tries)
{
    int i;

    for (i = 0; i < tries; ++i) {
        apr_uint32_t before;

        if (!bbs_seqlock_read_begin(seq, &before)) {
            apr_thread_yield();
            continue;
        }
        memcpy(dst, src, len);
        if (bbs_seqlock_read_end(seq, before)) {
            return 1;
        }
    }
    return 0;
}
