/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The member rules: what a member's checks over time make of its flags.
 * Given what the module knew of a member before, the verdict of a new
 * check (or none, to re-apply the last one) and what the member's flags
 * look like now, bbs_policy_step says what the module knows afterwards
 * and which flags to set and clear. The caller only applies the answer.
 * Like the decision core, this is free of httpd and table-tested.
 */
#ifndef BBS_POLICY_H
#define BBS_POLICY_H

#include <apr.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BBS_DEC_PENDING = 0,
    BBS_DEC_ROUTE,
    BBS_DEC_BLOCK,
    BBS_DEC_STANDBY,
    BBS_DEC_PANIC
} bbs_decision_e;

/* The worker flags the rules look at and act on. */
#define BBS_WF_STBY 0x1   /* hot standby (Stby) */
#define BBS_WF_HCFL 0x2   /* health check failed (HcFl) */
#define BBS_WF_ERROR 0x4  /* in error (Err): mod_proxy's, cleared on
                             recovery as mod_proxy_hcheck does */

/* bbs_policy_in_t.verdict when no check ran: the flags are re-applied from
 * what the member's state already says (a new generation, a new panic
 * judgement, a balancer-manager edit). */
#define BBS_NO_CHECK (-1)

typedef struct bbs_member_state_t {
    int pcount;          /* consecutive passes while out */
    int fcount;          /* consecutive fails while in */
    int down;            /* the checks say out, panic or not */
    int failed;          /* the last check learned nothing (fail) */
    int standby;         /* the node is in a standby state */
    int checked;         /* at least one check ran */
    unsigned owned;      /* BBS_WF_STBY, BBS_WF_HCFL: set by the module */
    int yielded;         /* an administrator took the module's Stby off:
                            not set again while the standby state lasts */
    apr_uint32_t gen;    /* configuration generation `owned` belongs to */
} bbs_member_state_t;

typedef struct bbs_policy_in_t {
    int verdict;         /* bbs_verdict_e, or BBS_NO_CHECK */
    int standby;         /* the check's state is a standby state */
    int passes;          /* hcpasses */
    int fails;           /* hcfails */
    int fast_block;      /* BBStatusFastBlock */
    int panic;           /* the balancer is in panic now */
    int ours;            /* the member's hcmethod is BBSTATUS now */
    unsigned wflags;     /* BBS_WF_* set on the worker now */
    unsigned admin;      /* BBS_WF_STBY when the administrator claims it:
                            set by the configuration or in balancer-manager */
    apr_uint32_t gen;    /* the generation the caller runs in */
} bbs_policy_in_t;

/* Why a check's verdict did not (yet) change where the member is: it
 * passed but the member stays out until hcpasses checks in a row pass, or
 * it failed but the member stays in until hcfails checks in a row fail. */
typedef enum {
    BBS_HELD_NONE = 0,
    BBS_HELD_PASSES,
    BBS_HELD_FAILS
} bbs_held_e;

typedef struct bbs_policy_out_t {
    bbs_member_state_t next;
    unsigned set;        /* BBS_WF_* to set on the worker */
    unsigned clear;      /* BBS_WF_* to clear on the worker */
    int error_time;      /* stamp the worker's error_time */
    bbs_decision_e decision; /* the one decision, recorded
                            and shown as it is */
    bbs_held_e held;
    int held_count;      /* checks in a row so far ... */
    int held_need;       /* ... of these (hcpasses or hcfails) */
} bbs_policy_out_t;

void bbs_policy_step(const bbs_member_state_t *prev, const bbs_policy_in_t *in,
                     bbs_policy_out_t *out);

/* The reason that explains out's decision, into buf: the check's own
 * reason (verdict_reason), after how many checks in a row are still
 * needed when the rules hold the member where it was. */
void bbs_policy_reason(char *buf, apr_size_t len, const bbs_policy_out_t *out,
                       const char *verdict_reason);

/* The decision a member's state shows. */
bbs_decision_e bbs_policy_decision(const bbs_member_state_t *m, int panic);
const char *bbs_decision_name(bbs_decision_e decision);

/* One member of a balancer as the panic judgement sees it. */
typedef struct bbs_panic_member_t {
    int ours;            /* hcmethod=BBSTATUS */
    int excluded;        /* disabled or stopped by the administrator */
    int usable;          /* mod_proxy would route to it now */
    int down;            /* ours: the checks say out */
    int failed;          /* ours: the last check learned nothing */
} bbs_panic_member_t;

/* Panic: every BBSTATUS member of the balancer that is not excluded is
 * out because its checks failed (none said it is going away), and no
 * other member is usable. */
int bbs_policy_panic(const bbs_panic_member_t *members, int n, int panic_on);

#ifdef __cplusplus
}
#endif
#endif /* BBS_POLICY_H */
