/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The checker's lease, one row per situation: who holds it, of which
 * generation, when it was renewed last, against who asks and when.
 */
#include "bbs_lease.h"
#include "bbs_test.h"

#define ME 4242u
#define OTHER 4343u
#define GEN 7u
#define TTL apr_time_from_msec(500)
#define T0 ((apr_time_t)1764000000 * APR_USEC_PER_SEC) /* a real clock */

static const struct {
    const char *name;
    apr_uint32_t holder, holder_gen;
    apr_time_t renewed;  /* when the holder renewed */
    apr_uint32_t my_gen;
    apr_time_t now;      /* when me asks */
    int may_take;
} rows[] = {
    {"a lease nobody holds is free", 0, 0, 0, GEN, T0, 1},
    {"its holder renews it", ME, GEN, T0, GEN, T0 + 10000, 1},
    {"its holder renews it even after it expired", ME, GEN, T0, GEN,
     T0 + 10 * TTL, 1},
    {"a lease another renewed just now is held", OTHER, GEN, T0, GEN, T0, 0},
    {"a lease renewed ttl ago is still held", OTHER, GEN, T0, GEN, T0 + TTL,
     0},
    {"a lease not renewed for longer than ttl is taken over", OTHER, GEN, T0,
     GEN, T0 + TTL + 10000, 1},
    {"renewals count in 10 ms: 9 ms past ttl is not longer", OTHER, GEN, T0,
     GEN, T0 + TTL + 9000, 0},
    {"a holder of an older generation is taken over at once", OTHER, GEN - 1,
     T0, GEN, T0, 1},
    {"a holder of a newer generation keeps it", OTHER, GEN + 1, T0, GEN, T0,
     0},
    {"generations are compared across the wrap", OTHER, 0xffffffffu, T0, 1u,
     T0, 1},
    {"a newer generation across the wrap keeps it", OTHER, 1u, T0,
     0xffffffffu, T0, 0},
    {"renewal times are compared across the wrap of 10 ms units", OTHER, GEN,
     (apr_time_t)0xffffffffu * 10000, GEN,
     (apr_time_t)0x100000000u * 10000 + 10000, 0},
    {"an expired lease across the wrap of 10 ms units", OTHER, GEN,
     (apr_time_t)0xffffffffu * 10000, GEN,
     (apr_time_t)0x100000000u * 10000 + TTL, 1},
    {"a renewal later than now counts as expired", OTHER, GEN, T0 + 20000,
     GEN, T0, 1},
};

START_TEST(who_may_take_the_lease)
{
    apr_uint64_t word = rows[_i].holder
                            ? bbs_lease_word(rows[_i].holder,
                                             rows[_i].renewed)
                            : 0;

    ck_assert_msg(bbs_lease_may_take(word, rows[_i].holder_gen, ME,
                                     rows[_i].my_gen, rows[_i].now, TTL)
                      == rows[_i].may_take,
                  "%s", rows[_i].name);
}
END_TEST

START_TEST(the_word_names_its_holder)
{
    ck_assert_uint_eq(bbs_lease_holder(bbs_lease_word(ME, T0)), ME);
    ck_assert_uint_eq(bbs_lease_holder(bbs_lease_word(0xffffffffu, T0)),
                      0xffffffffu);
    ck_assert_uint_eq(bbs_lease_holder(0), 0);
    /* the same holder and 10 ms: the same word, a renewal changes it */
    ck_assert(bbs_lease_word(ME, T0) == bbs_lease_word(ME, T0 + 9999));
    ck_assert(bbs_lease_word(ME, T0) != bbs_lease_word(ME, T0 + 10000));
}
END_TEST

TCase *lease_test_case(void)
{
    TCase *tc = tcase_create("lease");

    tcase_add_checked_fixture(tc, bbs_test_setup, bbs_test_teardown);
    tcase_add_loop_test(tc, who_may_take_the_lease, 0,
                        (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(tc, the_word_names_its_holder);
    return tc;
}
