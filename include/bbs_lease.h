/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The arithmetic of the checker's lease: which process holds it, until
 * when, and who may take it over. The lease itself is one 64-bit word in
 * shared memory that the glue reads and swaps atomically; everything
 * decided about it is decided here, on plain integers, so the rules are
 * unit-tested without processes or shared memory.
 */
#ifndef BBS_LEASE_H
#define BBS_LEASE_H

#include <apr_time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The lease word: the holder's pid in the high half, its last renewal in
 * 10 ms units in the low half, so that it changes hands in one atomic
 * compare-and-swap. 0: nobody holds it. */
apr_uint64_t bbs_lease_word(apr_uint32_t holder, apr_time_t now);
apr_uint32_t bbs_lease_holder(apr_uint64_t word);

/* Whether process me, of configuration generation my_gen, may take or
 * renew the lease that word says, held by a process of generation
 * holder_gen: when nobody holds it, when me does, when it was not renewed
 * for longer than ttl, or when its holder's generation is older. */
int bbs_lease_may_take(apr_uint64_t word, apr_uint32_t holder_gen,
                       apr_uint32_t me, apr_uint32_t my_gen, apr_time_t now,
                       apr_interval_time_t ttl);

#ifdef __cplusplus
}
#endif

#endif /* BBS_LEASE_H */
