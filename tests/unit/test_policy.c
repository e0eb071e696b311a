/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The member rules, one row per transition: what the module knew before,
 * what the check said and what the worker's flags are now, against what
 * the module must know afterwards and which flags it must set and clear.
 */
#include <string.h>

#include "bbs_decide.h"
#include "bbs_policy.h"
#include "bbs_test.h"

#define S BBS_WF_STBY
#define H BBS_WF_HCFL
#define E BBS_WF_ERROR
#define R BBS_ROUTE
#define B BBS_BLOCK
#define F BBS_FAIL
#define N BBS_NO_CHECK
#define G 5u     /* the generation the tests run in */
#define OLD 4u   /* before a restart */
#define NEW 6u   /* a newer generation's checker wrote the member */

/* A row names what differs from a plain case: a checked member of this
 * generation, in rotation, whose check routes, with hcpasses and hcfails
 * 1, BBStatusFastBlock on, no panic, hcmethod BBSTATUS, no flags, and
 * that stays in rotation with nothing to set or clear. */
typedef struct {
    const char *name;
    /* before */
    int down, standby, pcount, fcount;
    int unchecked;       /* no check ran yet */
    int yielded;         /* an administrator took the module's Stby off */
    unsigned owned, gen; /* gen 0: G */
    /* the check and the member's settings and flags now */
    int verdict, in_standby, passes, fails, panic;
    int fast_block_off, other_method;
    unsigned wflags, admin;
    /* after */
    int x_down, x_standby, x_pcount, x_fcount;
    unsigned x_owned, x_set, x_clear;
    bbs_decision_e x_decision; /* always given */
    int x_error_time;
} row_t;

static const row_t rows[] = {
    /* route */
    {.name = "route keeps an in member in and resets its fails",
     .fcount = 1, .fails = 3, .x_decision = BBS_DEC_ROUTE},
    {.name = "first check in a standby state sets Stby and holds it",
     .unchecked = 1, .in_standby = 1, .x_standby = 1, .x_owned = S, .x_set = S,
     .x_decision = BBS_DEC_STANDBY},
    {.name = "route into standby sets Stby and holds it",
     .in_standby = 1, .x_standby = 1, .x_owned = S, .x_set = S,
     .x_decision = BBS_DEC_STANDBY},
    {.name = "standby where an administrator set Stby: left to the administrator",
     .in_standby = 1, .wflags = S, .x_standby = 1,
     .x_decision = BBS_DEC_STANDBY},
    {.name = "route out of standby clears the module's Stby",
     .standby = 1, .owned = S, .wflags = S, .x_clear = S,
     .x_decision = BBS_DEC_ROUTE},
    {.name = "route out of standby keeps the administrator's Stby",
     .standby = 1, .wflags = S, .x_decision = BBS_DEC_ROUTE},
    {.name = "administrator's +H on a Stby the module holds wins",
     .standby = 1, .owned = S, .wflags = S, .admin = S,
     .x_decision = BBS_DEC_ROUTE},
    {.name = "an out member needs hcpasses passes",
     .down = 1, .owned = H, .passes = 3, .wflags = H, .x_down = 1,
     .x_pcount = 1, .x_owned = H, .x_decision = BBS_DEC_BLOCK},
    {.name = "the last pass brings it back and clears HcFl and Err",
     .down = 1, .pcount = 2, .owned = H, .passes = 3, .wflags = H | E,
     .x_clear = H | E, .x_decision = BBS_DEC_ROUTE},
    {.name = "a member in error counts passes before Err is cleared",
     .passes = 2, .wflags = E, .x_pcount = 1, .x_decision = BBS_DEC_ROUTE},
    {.name = "hcpasses=1 clears Err at the first pass",
     .wflags = E, .x_clear = E, .x_decision = BBS_DEC_ROUTE},
    {.name = "a pass while still out keeps the standby state and its Stby",
     .down = 1, .standby = 1, .owned = S | H, .passes = 3, .wflags = S | H,
     .x_down = 1, .x_standby = 1, .x_pcount = 1, .x_owned = S | H,
     .x_decision = BBS_DEC_BLOCK},
    {.name = "route in panic: in, no HcFl",
     .down = 1, .panic = 1, .x_decision = BBS_DEC_ROUTE},
    /* fail */
    {.name = "a fail counts towards hcfails",
     .verdict = F, .fails = 3, .x_fcount = 1, .x_decision = BBS_DEC_ROUTE,
     .x_error_time = 1},
    {.name = "the hcfails-th fail takes the member out with HcFl",
     .fcount = 2, .verdict = F, .fails = 3, .x_down = 1, .x_owned = H,
     .x_set = H, .x_decision = BBS_DEC_BLOCK, .x_error_time = 1},
    {.name = "fails while out count no further",
     .down = 1, .owned = H, .verdict = F, .fails = 3, .wflags = H, .x_down = 1,
     .x_owned = H, .x_decision = BBS_DEC_BLOCK},
    {.name = "a fail resets the passes of an out member",
     .down = 1, .pcount = 2, .owned = H, .verdict = F, .passes = 3,
     .wflags = H, .x_down = 1, .x_owned = H, .x_decision = BBS_DEC_BLOCK},
    {.name = "a failed check learns no state: the standby state and Stby stay",
     .standby = 1, .owned = S, .verdict = F, .fails = 3, .wflags = S,
     .x_standby = 1, .x_fcount = 1, .x_owned = S,
     .x_decision = BBS_DEC_STANDBY, .x_error_time = 1},
    {.name = "out in panic: no HcFl",
     .verdict = F, .panic = 1, .x_down = 1, .x_decision = BBS_DEC_PANIC,
     .x_error_time = 1},
    {.name = "panic lifts the module's HcFl",
     .down = 1, .owned = H, .verdict = N, .panic = 1, .wflags = H, .x_down = 1,
     .x_clear = H, .x_decision = BBS_DEC_PANIC},
    {.name = "panic over puts HcFl back",
     .down = 1, .verdict = N, .x_down = 1, .x_owned = H, .x_set = H,
     .x_decision = BBS_DEC_BLOCK},
    {.name = "hcpasses and hcfails below 1 count as 1",
     .verdict = F, .passes = 0, .fails = 0, .x_down = 1, .x_owned = H,
     .x_set = H, .x_decision = BBS_DEC_BLOCK, .x_error_time = 1},
    /* block */
    {.name = "block with fast block takes the member out at once",
     .fcount = 1, .verdict = B, .fails = 3, .x_down = 1, .x_owned = H,
     .x_set = H, .x_decision = BBS_DEC_BLOCK, .x_error_time = 1},
    {.name = "block without fast block counts as a fail",
     .verdict = B, .fails = 2, .fast_block_off = 1, .x_fcount = 1,
     .x_decision = BBS_DEC_ROUTE, .x_error_time = 1},
    {.name = "block without fast block at hcfails takes it out",
     .fcount = 1, .verdict = B, .fails = 2, .fast_block_off = 1, .x_down = 1,
     .x_owned = H, .x_set = H, .x_decision = BBS_DEC_BLOCK, .x_error_time = 1},
    {.name = "block in panic: out, no HcFl",
     .verdict = B, .panic = 1, .x_down = 1, .x_decision = BBS_DEC_PANIC,
     .x_error_time = 1},
    {.name = "block of a standby member: out, its Stby kept",
     .standby = 1, .owned = S, .verdict = B, .wflags = S, .x_down = 1,
     .x_standby = 1, .x_owned = S | H, .x_set = H, .x_decision = BBS_DEC_BLOCK,
     .x_error_time = 1},
    {.name = "block of an administrator's standby member: HcFl only",
     .verdict = B, .wflags = S, .x_down = 1, .x_owned = H, .x_set = H,
     .x_decision = BBS_DEC_BLOCK, .x_error_time = 1},
    /* flags others set or cleared */
    {.name = "HcFl is the health check's: cleared when the checks pass",
     .wflags = H, .x_clear = H, .x_decision = BBS_DEC_ROUTE},
    {.name = "HcFl someone else set on an out member becomes the module's",
     .down = 1, .verdict = N, .wflags = H, .x_down = 1, .x_owned = H,
     .x_decision = BBS_DEC_BLOCK},
    {.name = "administrator's +H claim while the module's standby is wanted",
     .standby = 1, .owned = S, .verdict = N, .wflags = S, .admin = S,
     .x_standby = 1, .x_decision = BBS_DEC_STANDBY},
    {.name = "status=+H taken off in balancer-manager: not the module's to set",
     .standby = 1, .in_standby = 1, .admin = S, .x_standby = 1,
     .x_decision = BBS_DEC_STANDBY},
    {.name = "Stby an administrator took off stays off while the state lasts",
     .standby = 1, .owned = S, .verdict = N, .x_standby = 1,
     .x_decision = BBS_DEC_STANDBY},
    /* restarts */
    {.name = "restart rebuilt the flags: Stby and HcFl come back from the record",
     .down = 1, .standby = 1, .owned = S | H, .gen = OLD, .verdict = N,
     .x_down = 1, .x_standby = 1, .x_owned = S | H, .x_set = S | H,
     .x_decision = BBS_DEC_BLOCK},
    {.name = "restart rebuilt the flags of a standby member: Stby back",
     .standby = 1, .owned = S, .gen = OLD, .verdict = N, .x_standby = 1,
     .x_owned = S, .x_set = S, .x_decision = BBS_DEC_STANDBY},
    {.name = "restart kept the flags: the module's Stby is still its own",
     .standby = 1, .owned = S, .gen = OLD, .verdict = N, .wflags = S,
     .x_standby = 1, .x_owned = S, .x_decision = BBS_DEC_STANDBY},
    {.name = "restart kept the flags: cleared when the member routes again",
     .standby = 1, .owned = S, .gen = OLD, .wflags = S, .x_clear = S,
     .x_decision = BBS_DEC_ROUTE},
    {.name = "restart with +H now in the configuration: the administrator's",
     .standby = 1, .owned = S, .gen = OLD, .wflags = S, .admin = S,
     .x_decision = BBS_DEC_ROUTE},
    {.name = "restart, +H in the configuration of a member never held",
     .gen = OLD, .wflags = S, .x_decision = BBS_DEC_ROUTE},
    {.name = "restart before any check: the member waits in standby",
     .unchecked = 1, .gen = OLD, .verdict = N, .x_owned = S, .x_set = S,
     .x_decision = BBS_DEC_PENDING},
    {.name = "never checked: a standby, the administrator's Stby left alone",
     .unchecked = 1, .verdict = N, .wflags = S, .admin = S,
     .x_decision = BBS_DEC_PENDING},
    {.name = "Stby taken off while unchecked: a first check in standby sets it",
     .unchecked = 1, .yielded = 1, .in_standby = 1, .x_standby = 1, .x_owned = S,
     .x_set = S, .x_decision = BBS_DEC_STANDBY},
    {.name = "the first check routes: the module's Stby of an unchecked member goes",
     .unchecked = 1, .owned = S, .wflags = S, .x_clear = S,
     .x_decision = BBS_DEC_ROUTE},
    {.name = "a newer generation holds the member: an older checker leaves it",
     .standby = 1, .owned = S, .gen = NEW, .x_standby = 1, .x_owned = S,
     .x_decision = BBS_DEC_STANDBY},
    /* another hcmethod */
    {.name = "switched to another method: the module's Stby and HcFl go",
     .down = 1, .standby = 1, .owned = S | H, .verdict = N, .other_method = 1,
     .wflags = S | H, .x_down = 1, .x_standby = 1, .x_clear = S | H,
     .x_decision = BBS_DEC_PENDING},
    {.name = "switched to another method: the administrator's Stby stays",
     .standby = 1, .verdict = N, .other_method = 1, .wflags = S,
     .x_standby = 1, .x_decision = BBS_DEC_PENDING},
    {.name = "switched to another method after a restart rebuilt the flags",
     .standby = 1, .owned = S, .gen = OLD, .verdict = N, .other_method = 1,
     .x_standby = 1, .x_decision = BBS_DEC_PENDING},
    {.name = "switched to another method: HcFl the other method set stays",
     .verdict = N, .other_method = 1, .wflags = H,
     .x_decision = BBS_DEC_PENDING},
    {.name = "switched to another method: a check result changes nothing",
     .verdict = F, .other_method = 1, .x_decision = BBS_DEC_PENDING},
};

static void run_row(const row_t *t, bbs_policy_out_t *out)
{
    bbs_member_state_t prev;
    bbs_policy_in_t in;

    memset(&prev, 0, sizeof(prev));
    prev.down = t->down;
    prev.standby = t->standby;
    prev.checked = !t->unchecked;
    prev.yielded = t->yielded;
    prev.pcount = t->pcount;
    prev.fcount = t->fcount;
    prev.owned = t->owned;
    prev.gen = t->gen ? t->gen : G;
    memset(&in, 0, sizeof(in));
    in.verdict = t->verdict;
    in.standby = t->in_standby;
    in.passes = t->passes ? t->passes : 1;
    in.fails = t->fails ? t->fails : 1;
    in.fast_block = !t->fast_block_off;
    in.panic = t->panic;
    in.ours = !t->other_method;
    in.wflags = t->wflags;
    in.admin = t->admin;
    in.gen = G;
    bbs_policy_step(&prev, &in, out);
}

START_TEST(every_transition_of_the_table)
{
    const row_t *t = &rows[_i];
    bbs_policy_out_t out;

    run_row(t, &out);
    ck_assert_msg(out.next.down == t->x_down, "%s: down %d", t->name,
                  out.next.down);
    ck_assert_msg(out.next.standby == t->x_standby, "%s: standby %d",
                  t->name, out.next.standby);
    ck_assert_msg(out.next.pcount == t->x_pcount, "%s: pcount %d", t->name,
                  out.next.pcount);
    ck_assert_msg(out.next.fcount == t->x_fcount, "%s: fcount %d", t->name,
                  out.next.fcount);
    ck_assert_msg(out.next.owned == t->x_owned, "%s: owned %#x", t->name,
                  out.next.owned);
    ck_assert_msg(out.set == t->x_set, "%s: set %#x", t->name, out.set);
    ck_assert_msg(out.clear == t->x_clear, "%s: clear %#x", t->name,
                  out.clear);
    ck_assert_msg(out.decision == t->x_decision, "%s: decision %s", t->name,
                  bbs_decision_name(out.decision));
    ck_assert_msg(out.error_time == t->x_error_time, "%s: error_time %d",
                  t->name, out.error_time);
    ck_assert_msg(out.next.gen == (t->gen > G ? t->gen : G), "%s: gen %u",
                  t->name, out.next.gen);
}
END_TEST

/* Every combination of state, flags and claims: the rules never clear a
 * Stby the module does not hold, never touch a flag the administrator
 * claims, and what they answer is stable (applied again, nothing to do). */
START_TEST(rules_hold_for_every_combination)
{
    static const int verdicts[] = {N, R, B, F};
    unsigned combo, checked = 0;

    for (combo = 0; combo < (1u << 15); ++combo) {
        bbs_member_state_t prev, again;
        bbs_policy_in_t in;
        bbs_policy_out_t out, out2;
        unsigned held;

        memset(&prev, 0, sizeof(prev));
        memset(&in, 0, sizeof(in));
        prev.down = combo & 1;
        prev.standby = (combo >> 1) & 1;
        prev.checked = (combo >> 2) & 1;
        prev.owned = (combo >> 3) & 3;
        prev.gen = ((combo >> 5) & 1) ? OLD : G;
        in.wflags = (combo >> 6) & 7;
        in.admin = ((combo >> 9) & 1) ? S : 0;
        in.panic = (combo >> 10) & 1;
        in.ours = !((combo >> 11) & 1);
        in.verdict = verdicts[(combo >> 12) & 3];
        prev.yielded = (combo >> 14) & 1;
        in.standby = in.verdict == R && prev.standby;
        in.passes = 1;
        in.fails = 1;
        in.fast_block = 1;
        in.gen = G;
        bbs_policy_step(&prev, &in, &out);

        held = prev.owned & in.wflags & ~in.admin;
        ck_assert_msg(!(out.set & out.clear), "combo %#x", combo);
        ck_assert_msg(!(out.set & in.wflags), "combo %#x sets a set flag",
                      combo);
        ck_assert_msg(!(out.clear & ~in.wflags),
                      "combo %#x clears an unset flag", combo);
        ck_assert_msg(!(out.clear & S) || (held & S),
                      "combo %#x clears a Stby it does not hold", combo);
        ck_assert_msg(!(out.next.owned & in.admin),
                      "combo %#x holds a flag the administrator claims",
                      combo);
        ck_assert_msg(!(out.set & in.admin & S),
                      "combo %#x sets a Stby the administrator claims",
                      combo);
        if (!in.ours) {
            ck_assert_msg(!out.set && !out.next.owned, "combo %#x", combo);
        }

        /* the same again, on the flags as they are now (an administrator's
         * claim stands: the configuration makes it again at every step) */
        again = out.next;
        in.wflags = (in.wflags | out.set) & ~out.clear;
        in.verdict = N;
        bbs_policy_step(&again, &in, &out2);
        ck_assert_msg(!out2.set && !out2.clear,
                      "combo %#x: not stable (set %#x clear %#x)", combo,
                      out2.set, out2.clear);
        ck_assert_int_eq(out2.decision, out.decision);
        checked++;
    }
    ck_assert_uint_eq(checked, 1u << 15);
}
END_TEST

/* An administrator takes the module's Stby off in balancer-manager: it
 * stays off while the node stays in its standby state, and the module
 * sets it again when the node enters one anew, or after a restart. */
START_TEST(an_administrators_off_lasts_while_the_standby_state_does)
{
    bbs_member_state_t m;
    bbs_policy_in_t in;
    bbs_policy_out_t out;

    memset(&m, 0, sizeof(m));
    memset(&in, 0, sizeof(in));
    in.passes = in.fails = 1;
    in.ours = 1;
    in.gen = G;
    in.verdict = R;
    in.standby = 1;
    bbs_policy_step(&m, &in, &out);
    ck_assert_uint_eq(out.set, S);
    m = out.next;

    in.wflags = 0; /* taken off in balancer-manager */
    bbs_policy_step(&m, &in, &out);
    ck_assert_uint_eq(out.set, 0);
    ck_assert_int_eq(out.next.yielded, 1);
    ck_assert_uint_eq(out.next.owned, 0);
    m = out.next;
    in.verdict = N;
    bbs_policy_step(&m, &in, &out);
    ck_assert_uint_eq(out.set, 0);
    m = out.next;

    /* a restart: the records decide again */
    in.gen = G + 1;
    bbs_policy_step(&m, &in, &out);
    ck_assert_uint_eq(out.set, S);
    ck_assert_int_eq(out.next.yielded, 0);
    m = out.next;

    /* off again, then RUNNING, then STARTING anew: set again */
    in.wflags = 0;
    bbs_policy_step(&m, &in, &out);
    ck_assert_int_eq(out.next.yielded, 1);
    m = out.next;
    in.verdict = R;
    in.standby = 0;
    bbs_policy_step(&m, &in, &out);
    ck_assert_int_eq(out.next.yielded, 0);
    ck_assert_uint_eq(out.set | out.clear, 0);
    m = out.next;
    in.standby = 1;
    bbs_policy_step(&m, &in, &out);
    ck_assert_uint_eq(out.set, S);
}
END_TEST

START_TEST(decision_names)
{
    ck_assert_str_eq(bbs_decision_name(BBS_DEC_PENDING), "pending");
    ck_assert_str_eq(bbs_decision_name(BBS_DEC_ROUTE), "route");
    ck_assert_str_eq(bbs_decision_name(BBS_DEC_BLOCK), "block");
    ck_assert_str_eq(bbs_decision_name(BBS_DEC_STANDBY), "standby");
    ck_assert_str_eq(bbs_decision_name(BBS_DEC_PANIC), "panic");
    ck_assert_str_eq(bbs_decision_name(99), "pending");
}
END_TEST

/* ours, excluded, usable, down, failed */
#define OURS_FAILED {1, 0, 0, 1, 1}
#define OURS_BLOCKED {1, 0, 0, 1, 0}
#define OURS_IN {1, 0, 1, 0, 0}
#define OURS_EXCLUDED {1, 1, 0, 0, 0}
#define OTHER_USABLE {0, 0, 1, 0, 0}
#define OTHER_DOWN {0, 0, 0, 0, 0}
#define OTHER_EXCLUDED {0, 1, 1, 0, 0}

START_TEST(panic_judgement)
{
    static const struct {
        const char *name;
        bbs_panic_member_t m[3];
        int n, panic_on, panic;
    } cases[] = {
        {"every member failed", {OURS_FAILED, OURS_FAILED}, 2, 1, 1},
        {"off", {OURS_FAILED, OURS_FAILED}, 2, 0, 0},
        {"one said it is stopping", {OURS_FAILED, OURS_BLOCKED}, 2, 1, 0},
        {"one passes", {OURS_FAILED, OURS_IN}, 2, 1, 0},
        {"an excluded member does not count",
         {OURS_FAILED, OURS_EXCLUDED}, 2, 1, 1},
        {"only excluded members", {OURS_EXCLUDED}, 1, 1, 0},
        {"another usable member", {OURS_FAILED, OTHER_USABLE}, 2, 1, 0},
        {"another member, down", {OURS_FAILED, OTHER_DOWN}, 2, 1, 1},
        {"another usable member, excluded",
         {OURS_FAILED, OTHER_EXCLUDED}, 2, 1, 1},
        {"no member", {OTHER_DOWN}, 0, 1, 0},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        ck_assert_msg(bbs_policy_panic(cases[i].m, cases[i].n,
                                       cases[i].panic_on)
                          == cases[i].panic,
                      "%s", cases[i].name);
    }
}
END_TEST

/* What the rules did with a check when they held the member where it
 * was, and the reason shown for the decision, which must explain it. */
START_TEST(a_held_member_has_a_reason_that_explains_its_decision)
{
    static const struct {
        const char *name;
        int down, pcount, fcount, verdict, passes, fails;
        bbs_held_e held;
        int count, need;
        bbs_decision_e decision;
        const char *reason;
    } cases[] = {
        {"a pass of an out member, 1 of 2", 1, 0, 0, R, 2, 1,
         BBS_HELD_PASSES, 1, 2, BBS_DEC_BLOCK,
         "out until hcpasses=2 checks in a row pass, 1 so far; "
         "last check: the check's reason"},
        {"a pass of an out member, 2 of 3", 1, 1, 0, R, 3, 1,
         BBS_HELD_PASSES, 2, 3, BBS_DEC_BLOCK,
         "out until hcpasses=3 checks in a row pass, 2 so far; "
         "last check: the check's reason"},
        {"the last pass needed brings it in", 1, 1, 0, R, 2, 1,
         BBS_HELD_NONE, 0, 0, BBS_DEC_ROUTE, "the check's reason"},
        {"a failed check of an in member, 1 of 3", 0, 0, 0, F, 1, 3,
         BBS_HELD_FAILS, 1, 3, BBS_DEC_ROUTE,
         "in until hcfails=3 checks in a row fail, 1 so far; "
         "last check: the check's reason"},
        {"the last fail needed takes it out", 0, 0, 2, F, 1, 3,
         BBS_HELD_NONE, 0, 0, BBS_DEC_BLOCK, "the check's reason"},
        {"a pass of an in member holds nothing", 0, 0, 0, R, 2, 2,
         BBS_HELD_NONE, 0, 0, BBS_DEC_ROUTE, "the check's reason"},
        {"a failed check of an out member holds nothing", 1, 0, 0, F, 2, 2,
         BBS_HELD_NONE, 0, 0, BBS_DEC_BLOCK, "the check's reason"},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        bbs_member_state_t prev;
        bbs_policy_in_t in;
        bbs_policy_out_t out;
        char reason[BBS_REASON_LEN];

        memset(&prev, 0, sizeof(prev));
        prev.checked = 1;
        prev.down = cases[i].down;
        prev.pcount = cases[i].pcount;
        prev.fcount = cases[i].fcount;
        prev.gen = G;
        memset(&in, 0, sizeof(in));
        in.verdict = cases[i].verdict;
        in.passes = cases[i].passes;
        in.fails = cases[i].fails;
        in.ours = 1;
        in.wflags = cases[i].down ? H : 0;
        in.gen = G;
        bbs_policy_step(&prev, &in, &out);
        ck_assert_msg(out.held == cases[i].held, "%s: held %d",
                      cases[i].name, (int)out.held);
        ck_assert_msg(out.decision == cases[i].decision, "%s: decision %s",
                      cases[i].name, bbs_decision_name(out.decision));
        if (cases[i].held != BBS_HELD_NONE) {
            ck_assert_msg(out.held_count == cases[i].count
                              && out.held_need == cases[i].need,
                          "%s: %d of %d", cases[i].name, out.held_count,
                          out.held_need);
        }
        bbs_policy_reason(reason, sizeof(reason), &out,
                          "the check's reason");
        ck_assert_msg(!strcmp(reason, cases[i].reason), "%s: '%s'",
                      cases[i].name, reason);
    }
}
END_TEST

/* A long reason of the check is cut, never what the rules add before it. */
START_TEST(a_long_check_reason_keeps_the_rules_part)
{
    bbs_policy_out_t out;
    char reason[BBS_REASON_LEN], longer[BBS_REASON_LEN * 2];

    memset(&out, 0, sizeof(out));
    out.held = BBS_HELD_PASSES;
    out.held_count = 1;
    out.held_need = 2;
    memset(longer, 'x', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    bbs_policy_reason(reason, sizeof(reason), &out, longer);
    ck_assert_uint_eq(strlen(reason), sizeof(reason) - 1);
    ck_assert_msg(!strncmp(reason, "out until hcpasses=2 checks in a row "
                                   "pass, 1 so far; last check: xxx", 55),
                  "%s", reason);
}
END_TEST

TCase *policy_test_case(void)
{
    TCase *tc = tcase_create("policy");

    tcase_add_loop_test(tc, every_transition_of_the_table, 0,
                        (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(tc, rules_hold_for_every_combination);
    tcase_add_test(tc, an_administrators_off_lasts_while_the_standby_state_does);
    tcase_add_test(tc, decision_names);
    tcase_add_test(tc, panic_judgement);
    tcase_add_test(tc, a_held_member_has_a_reason_that_explains_its_decision);
    tcase_add_test(tc, a_long_check_reason_keeps_the_rules_part);
    return tc;
}
