/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The sequence lock's rules: odd while written, a copy kept only when the
 * count did not move, a dead writer's odd count taken over after the
 * limit; then writers and readers in threads at once.
 */
#include <string.h>

#include <apr_atomic.h>
#include <apr_thread_proc.h>

#include "bbs_seqlock.h"
#include "bbs_test.h"

#define LIMIT 100 /* microseconds an odd count may stay */

START_TEST(a_write_makes_the_count_odd_then_even)
{
    volatile apr_uint32_t seq = 4;
    bbs_seqlock_wait_t w = {0, 0};

    ck_assert_int_eq(bbs_seqlock_write_try(&seq, &w, 1000, LIMIT), 1);
    ck_assert_uint_eq(seq, 5);
    bbs_seqlock_write_end(&seq);
    ck_assert_uint_eq(seq, 6);
}
END_TEST

START_TEST(a_reader_waits_while_a_write_is_under_way)
{
    volatile apr_uint32_t seq = 7;
    apr_uint32_t before;

    ck_assert_int_eq(bbs_seqlock_read_begin(&seq, &before), 0);
}
END_TEST

START_TEST(a_copy_with_no_write_in_between_is_consistent)
{
    volatile apr_uint32_t seq = 8;
    apr_uint32_t before;

    ck_assert_int_eq(bbs_seqlock_read_begin(&seq, &before), 1);
    ck_assert_int_eq(bbs_seqlock_read_end(&seq, before), 1);
}
END_TEST

START_TEST(a_reader_sees_a_torn_write_as_not_consistent)
{
    volatile apr_uint32_t seq = 2;
    bbs_seqlock_wait_t w = {0, 0};
    apr_uint32_t before;

    ck_assert_int_eq(bbs_seqlock_read_begin(&seq, &before), 1);
    /* a write begins while the reader copies ... */
    ck_assert_int_eq(bbs_seqlock_write_try(&seq, &w, 1000, LIMIT), 1);
    ck_assert_int_eq(bbs_seqlock_read_end(&seq, before), 0);
    /* ... and a write that ended meanwhile is no better */
    bbs_seqlock_write_end(&seq);
    ck_assert_int_eq(bbs_seqlock_read_end(&seq, before), 0);
}
END_TEST

/* A writer's tries against the count another writer left: the count and
 * what the writer remembers before, the time of the try, and after. */
static const struct {
    const char *name;
    apr_uint32_t seq, seen;
    apr_time_t since, now;
    int writes;
    apr_uint32_t x_seq, x_seen;
    apr_time_t x_since;
} takeover_rows[] = {
    {"an even count is taken at once", 6, 0, 0, 1000, 1, 7, 0, 0},
    {"an even count is taken whatever was waited on before", 6, 5, 1000,
     1050, 1, 7, 5, 1000},
    {"an odd count is first only noted", 5, 0, 0, 1000, 0, 5, 5, 1000},
    {"an odd count is waited for up to the limit", 5, 5, 1000,
     1000 + LIMIT, 0, 5, 5, 1000},
    {"a writer that died with an odd count is taken over after the limit",
     5, 5, 1000, 1000 + LIMIT + 1, 1, 7, 5, 1000},
    {"a count that moved on is another writer: the wait starts again", 7, 5,
     1000, 5000, 0, 7, 7, 5000},
    {"a count noted without a time is noted again", 5, 5, 0, 5000, 0, 5, 5,
     5000},
    {"the count wraps around", 0xffffffffu, 0xffffffffu, 1000,
     1000 + LIMIT + 1, 1, 1, 0xffffffffu, 1000},
};

START_TEST(a_stuck_writer_is_taken_over_by_the_rules)
{
    volatile apr_uint32_t seq = takeover_rows[_i].seq;
    bbs_seqlock_wait_t w;

    w.seen = takeover_rows[_i].seen;
    w.since = takeover_rows[_i].since;
    ck_assert_msg(bbs_seqlock_write_try(&seq, &w, takeover_rows[_i].now,
                                        LIMIT)
                      == takeover_rows[_i].writes,
                  "%s", takeover_rows[_i].name);
    ck_assert_msg(seq == takeover_rows[_i].x_seq, "%s: count %u",
                  takeover_rows[_i].name, (unsigned)seq);
    ck_assert_msg(w.seen == takeover_rows[_i].x_seen
                      && w.since == takeover_rows[_i].x_since,
                  "%s: seen %u since %" APR_TIME_T_FMT,
                  takeover_rows[_i].name, (unsigned)w.seen, w.since);
}
END_TEST

START_TEST(a_write_after_a_dead_writer_lands_after_the_limit)
{
    volatile apr_uint32_t seq = 5; /* its writer died mid-copy */
    char rec[16] = "torn", mine[16] = "whole";
    apr_time_t start = apr_time_now();

    bbs_seqlock_write(&seq, rec, mine, sizeof(rec), apr_time_from_msec(2));
    ck_assert_int_ge(apr_time_now() - start, apr_time_from_msec(2));
    ck_assert_uint_eq(seq, 8);
    ck_assert_str_eq(rec, "whole");
}
END_TEST

START_TEST(a_read_of_a_record_left_mid_write_gives_up)
{
    volatile apr_uint32_t seq = 5;
    char rec[16] = "torn", copy[16] = "untouched";

    ck_assert_int_eq(bbs_seqlock_read(&seq, copy, rec, sizeof(rec), 100), 0);
    ck_assert_str_eq(copy, "untouched");
}
END_TEST

/* Writers fill every word of the record with one number; a reader that
 * ever keeps a copy holding two numbers saw a torn write. */
#define WORDS 64
#define WRITES 20000

typedef struct {
    volatile apr_uint32_t seq;
    apr_uint32_t rec[WORDS];
    volatile apr_uint32_t writers_left;
    volatile apr_uint32_t readers_started;
    apr_uint32_t torn, whole;
} shared_t;

static void *APR_THREAD_FUNC writer(apr_thread_t *t, void *data)
{
    shared_t *sh = data;
    apr_uint32_t buf[WORDS], i, k;

    /* on a busy machine the writers could be done before a reader ran:
     * they start once both readers read */
    while (apr_atomic_read32(&sh->readers_started) < 2) {
        apr_thread_yield();
    }
    for (i = 1; i <= WRITES; ++i) {
        for (k = 0; k < WORDS; ++k) {
            buf[k] = i;
        }
        /* a limit no scheduler delay reaches: no takeover here */
        bbs_seqlock_write(&sh->seq, sh->rec, buf, sizeof(buf),
                          apr_time_from_sec(60));
    }
    apr_atomic_dec32(&sh->writers_left);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static void *APR_THREAD_FUNC reader(apr_thread_t *t, void *data)
{
    shared_t *sh = data;
    apr_uint32_t copy[WORDS], k;
    int last;

    apr_atomic_inc32(&sh->readers_started);
    /* one read more once the writers are done: a reader the scheduler
     * kept off the CPU until then still checks a whole copy */
    do {
        last = !apr_atomic_read32(&sh->writers_left);
        if (!bbs_seqlock_read(&sh->seq, copy, sh->rec, sizeof(copy), 1000)) {
            continue;
        }
        for (k = 1; k < WORDS && copy[k] == copy[0]; ++k) {
        }
        apr_atomic_inc32(k < WORDS ? &sh->torn : &sh->whole);
    } while (!last);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

START_TEST(readers_beside_two_writers_never_keep_a_torn_copy)
{
    shared_t *sh = apr_pcalloc(bbs_test_pool, sizeof(*sh));
    apr_thread_t *th[4];
    apr_status_t rv;
    int i;

    sh->writers_left = 2;
    for (i = 0; i < 4; ++i) {
        ck_assert_int_eq(apr_thread_create(&th[i], NULL,
                                           i < 2 ? writer : reader, sh,
                                           bbs_test_pool),
                         APR_SUCCESS);
    }
    for (i = 0; i < 4; ++i) {
        apr_thread_join(&rv, th[i]);
    }
    ck_assert_uint_eq(sh->torn, 0);
    ck_assert_uint_gt(sh->whole, 0);
    ck_assert_uint_eq(sh->seq, 2 * 2 * WRITES);
}
END_TEST

TCase *seqlock_test_case(void)
{
    TCase *tc = tcase_create("seqlock");

    tcase_add_checked_fixture(tc, bbs_test_setup, bbs_test_teardown);
    tcase_add_test(tc, a_write_makes_the_count_odd_then_even);
    tcase_add_test(tc, a_reader_waits_while_a_write_is_under_way);
    tcase_add_test(tc, a_copy_with_no_write_in_between_is_consistent);
    tcase_add_test(tc, a_reader_sees_a_torn_write_as_not_consistent);
    tcase_add_loop_test(tc, a_stuck_writer_is_taken_over_by_the_rules, 0,
                        (int)(sizeof(takeover_rows)
                              / sizeof(takeover_rows[0])));
    tcase_add_test(tc, a_write_after_a_dead_writer_lands_after_the_limit);
    tcase_add_test(tc, a_read_of_a_record_left_mid_write_gives_up);
    tcase_add_test(tc, readers_beside_two_writers_never_keep_a_torn_copy);
    return tc;
}
