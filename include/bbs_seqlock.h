/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * A sequence lock over a record that processes share: the one writer at a
 * time makes the count odd while it copies, and a reader keeps a copy only
 * if the count was even before it and unchanged after it, so nobody sees
 * half of one write and half of another. Only the count is shared state
 * here; where it and the record live (shared memory) is the caller's.
 */
#ifndef BBS_SEQLOCK_H
#define BBS_SEQLOCK_H

#include <apr_pools.h>
#include <apr_time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a writer waiting for another remembers between its tries. */
typedef struct bbs_seqlock_wait_t {
    apr_uint32_t seen; /* the odd count it waits on */
    apr_time_t since;  /* when it first saw that count; 0: not yet */
} bbs_seqlock_wait_t;

/* One try to begin a write, at time now (> 0): 1 when the caller writes
 * now (the count is odd and the caller's), 0 when it should yield and try
 * again with the same *w (zeroed before the first try). A count that stays
 * at one odd value for longer than limit is taken over. */
int bbs_seqlock_write_try(volatile apr_uint32_t *seq, bbs_seqlock_wait_t *w,
                          apr_time_t now, apr_interval_time_t limit);
/* Ends the write begun by a successful bbs_seqlock_write_try. */
void bbs_seqlock_write_end(volatile apr_uint32_t *seq);

/* Begins a read: 1 and the count in *before, or 0 while a write is under
 * way (yield and begin again). */
int bbs_seqlock_read_begin(volatile apr_uint32_t *seq, apr_uint32_t *before);
/* Whether what was copied since bbs_seqlock_read_begin is one write's,
 * whole. */
int bbs_seqlock_read_end(volatile apr_uint32_t *seq, apr_uint32_t before);

/* The whole write: len bytes of src into dst under seq, waiting for the
 * writer before it, or taking over after limit from one that died. */
void bbs_seqlock_write(volatile apr_uint32_t *seq, void *dst,
                       const void *src, apr_size_t len,
                       apr_interval_time_t limit);
/* The whole read: 1 and a consistent copy of len bytes of src in dst, or
 * 0 when none could be had in tries tries. */
int bbs_seqlock_read(volatile apr_uint32_t *seq, void *dst, const void *src,
                     apr_size_t len, int tries);

#ifdef __cplusplus
}
#endif

#endif /* BBS_SEQLOCK_H */
