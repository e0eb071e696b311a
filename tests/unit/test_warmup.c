/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The warm-up ramp: how the share moves with time and with the member's
 * answer times against its peers'.
 */
#include "bbs_warmup.h"
#include "bbs_test.h"

#define SEC(n) apr_time_from_sec(n)
#define MS(n) apr_time_from_msec(n)

START_TEST(the_share_follows_the_ramp_while_the_member_answers_well)
{
    static const struct {
        const char *name;
        apr_interval_time_t progress, elapsed, dt;
        apr_uint32_t member_us, peers_us;
        apr_interval_time_t x_progress;
        unsigned x_share;
        bbs_warm_state_e x_state;
    } cases[] = {
        {"fast from the start: time advances", 0, 0, SEC(3), 5000, 5000,
         SEC(3), 50 + 950 * 3 / 30, BBS_WARM_RAMPING},
        {"half way", SEC(14), SEC(14), SEC(1), 6000, 5000, SEC(15),
         50 + 950 / 2, BBS_WARM_RAMPING},
        {"just under twice the peers' time still counts as warm",
         SEC(10), SEC(10), SEC(1), 9999, 5000, SEC(11),
         50 + 950 * 11 / 30, BBS_WARM_RAMPING},
        {"slower than twice the peers: held, time goes back",
         SEC(10), SEC(12), SEC(1), 10001, 5000, SEC(9),
         50 + 950 * 9 / 30, BBS_WARM_HELD},
        {"held at the floor: no time to give back", 0, SEC(5), SEC(1),
         200000, 5000, 0, 50, BBS_WARM_HELD},
        {"no answer of the member yet: held at the floor", 0, 0, MS(100),
         0, 5000, 0, 50, BBS_WARM_HELD},
        {"three times the peers' time, but only 4 ms more: warm", SEC(2),
         SEC(2), SEC(1), 6000, 2000, SEC(3), 50 + 950 * 3 / 30,
         BBS_WARM_RAMPING},
        {"no peer to compare with: the ramp runs on time", SEC(2), SEC(2),
         SEC(1), 200000, 0, SEC(3), 50 + 950 * 3 / 30, BBS_WARM_RAMPING},
        {"the end of the ramp: full share", SEC(29), SEC(40), SEC(2), 5000,
         5000, SEC(30), BBS_SHARE_FULL, BBS_WARM_DONE},
        {"still slow after three ramps: full share, said so", SEC(1),
         SEC(90), SEC(1), 50000, 5000, SEC(1), BBS_SHARE_FULL,
         BBS_WARM_GAVE_UP},
        {"warm after three ramps: done", SEC(20), SEC(90), SEC(1), 5000,
         5000, SEC(20), BBS_SHARE_FULL, BBS_WARM_DONE},
    };
    bbs_warmup_conf_t c = {SEC(30), 50};
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        bbs_warmup_in_t in = {cases[i].progress, cases[i].elapsed,
                              cases[i].dt, cases[i].member_us,
                              cases[i].peers_us};
        bbs_warmup_out_t out;

        bbs_warmup_step(&c, &in, &out);
        ck_assert_msg(out.progress == cases[i].x_progress,
                      "%s: progress %" APR_TIME_T_FMT, cases[i].name,
                      out.progress);
        ck_assert_msg(out.share == cases[i].x_share, "%s: share %u",
                      cases[i].name, out.share);
        ck_assert_msg(out.state == cases[i].x_state, "%s: state %d",
                      cases[i].name, (int)out.state);
    }
}
END_TEST

START_TEST(no_ramp_configured_is_the_full_share)
{
    bbs_warmup_conf_t c = {0, 50};
    bbs_warmup_in_t in = {0, 0, SEC(1), 0, 5000};
    bbs_warmup_out_t out;

    bbs_warmup_step(&c, &in, &out);
    ck_assert_uint_eq(out.share, BBS_SHARE_FULL);
    ck_assert_int_eq(out.state, BBS_WARM_DONE);
}
END_TEST

/* Over a cold member that starts at 40 times its peers' answer time and
 * warms up, the share stays at the floor while it is slow and reaches the
 * top a ramp's length after it answers well. */
START_TEST(a_cold_member_gets_its_share_once_it_answers_well)
{
    bbs_warmup_conf_t c = {SEC(30), 50};
    bbs_warmup_in_t in = {0, 0, MS(100), 0, 5000};
    bbs_warmup_out_t out;
    apr_interval_time_t t, warm_at = SEC(37), full_at = 0;

    for (t = 0; t < SEC(89) && !full_at; t += MS(100)) {
        in.elapsed = t;
        in.member_us = t < warm_at ? 200000 : 6000;
        bbs_warmup_step(&c, &in, &out);
        if (t < warm_at) {
            ck_assert_uint_eq(out.share, 50);
        }
        if (out.state == BBS_WARM_DONE) {
            full_at = t;
        }
        in.progress = out.progress;
    }
    ck_assert_msg(full_at >= warm_at + SEC(29) && full_at <= warm_at + SEC(31),
                  "full share at %" APR_TIME_T_FMT " us", full_at);
}
END_TEST

START_TEST(a_draw_is_admitted_below_the_share)
{
    unsigned draw, admitted = 0;

    for (draw = 0; draw < BBS_SHARE_FULL; ++draw) {
        admitted += (unsigned)bbs_warmup_admits(250, draw);
    }
    ck_assert_uint_eq(admitted, 250);
    ck_assert(!bbs_warmup_admits(0, 0));
    ck_assert(bbs_warmup_admits(BBS_SHARE_FULL, BBS_SHARE_FULL - 1));
}
END_TEST

START_TEST(the_peers_time_is_the_median_of_those_known)
{
    apr_uint32_t none[] = {0, 0};
    apr_uint32_t odd[] = {9000, 0, 3000, 5000};
    apr_uint32_t even[] = {4000, 8000};
    apr_uint32_t big[] = {0xFFFFFFF0u, 0xFFFFFFFEu};

    ck_assert_uint_eq(bbs_warmup_median(none, 2), 0);
    ck_assert_uint_eq(bbs_warmup_median(odd, 4), 5000);
    ck_assert_uint_eq(bbs_warmup_median(even, 2), 6000);
    ck_assert_uint_eq(bbs_warmup_median(big, 2), 0xFFFFFFF7u);
}
END_TEST

START_TEST(the_answer_time_is_a_running_average)
{
    ck_assert_uint_eq(bbs_warmup_ewma(0, 8000), 8000);
    ck_assert_uint_eq(bbs_warmup_ewma(8000, 16000), 9000);
    ck_assert_uint_eq(bbs_warmup_ewma(0, 0), 1);
    ck_assert_uint_eq(bbs_warmup_ewma(0xFFFFFFFFu, 0xFFFFFFFFu),
                      0xFFFFFFFFu);
}
END_TEST

TCase *warmup_test_case(void)
{
    TCase *tc = tcase_create("warmup");

    tcase_add_test(tc, the_share_follows_the_ramp_while_the_member_answers_well);
    tcase_add_test(tc, no_ramp_configured_is_the_full_share);
    tcase_add_test(tc, a_cold_member_gets_its_share_once_it_answers_well);
    tcase_add_test(tc, a_draw_is_admitted_below_the_share);
    tcase_add_test(tc, the_peers_time_is_the_median_of_those_known);
    tcase_add_test(tc, the_answer_time_is_a_running_average);
    return tc;
}
