/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include "bbs_lease.h"

/* 10 ms: 32 bits of it last 497 days, and the differences below are
 * taken modulo 2^32, so a wrap in between costs nothing */
#define UNIT 10000

apr_uint64_t bbs_lease_word(apr_uint32_t holder, apr_time_t now)
{
    return ((apr_uint64_t)holder << 32) | (apr_uint32_t)(now / UNIT);
}

apr_uint32_t bbs_lease_holder(apr_uint64_t word)
{
    return (apr_uint32_t)(word >> 32);
}

int bbs_lease_may_take(apr_uint64_t word, apr_uint32_t holder_gen,
                       apr_uint32_t me, apr_uint32_t my_gen, apr_time_t now,
                       apr_interval_time_t ttl)
{
    apr_uint32_t holder = bbs_lease_holder(word), beat = (apr_uint32_t)word;
    apr_uint32_t t = (apr_uint32_t)(now / UNIT);

    if (holder == me || holder == 0) {
        return 1;
    }
    /* modulo 2^32: a renewal that reads as later than now (the clock
     * stepped back, or the holder renewed after the caller read the
     * clock) is a difference near 2^32 and counts as expired */
    if ((apr_interval_time_t)(apr_uint32_t)(t - beat) * UNIT > ttl) {
        return 1;
    }
    /* A child of a newer generation takes the lease at once: the holder
     * checks members of a configuration that is gone, and is on its way
     * out (mod_watchdog stops its ticks without a word to the callback
     * when the MPM stops the child), so waiting for the lease to expire
     * would leave new members unchecked for that long. Generations are
     * compared modulo 2^32 too. */
    return (apr_int32_t)(holder_gen - my_gen) < 0;
}
