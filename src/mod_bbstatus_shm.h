/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* Members' shared records and flags (mod_bbstatus_shm.c). */
#ifndef MOD_BBSTATUS_SHM_H
#define MOD_BBSTATUS_SHM_H

#include "bbs_policy.h"
#include "mod_bbstatus_private.h"

#define BBS_HISTORY 8
#define BBS_URL_LEN 256

typedef struct bbs_slot_t bbs_slot_t;

typedef struct {
    apr_time_t at;
    bbs_decision_e from;
    bbs_decision_e to;
    char state[BBS_STATE_LEN];
    char reason[BBS_REASON_LEN];
} bbs_change_t;

/* One member's record: written by the check that ran last, read by every
 * child. The copy below is what readers get, whole or not at all. */
typedef struct {
    char probe_url[BBS_URL_LEN];
    bbs_decision_e decision;
    bbs_verdict_e verdict;    /* of the last check */
    int has_state;
    int http_status;          /* 0: no response */
    int transport;            /* bbs_transport_e */
    int panic;
    char state[BBS_STATE_LEN];
    char reason[BBS_REASON_LEN];
    apr_time_t checked_at;
    apr_time_t changed_at;
    apr_interval_time_t latency;
    apr_interval_time_t last_interval; /* between the last two checks */
    apr_uint64_t checks;
    apr_uint64_t failures;
    apr_uint32_t history_len;  /* changes recorded, ever */
    bbs_change_t history[BBS_HISTORY]; /* ring, newest at (len-1)%N */
} bbs_record_t;

int bbs_shm_post_config(apr_pool_t *pconf, server_rec *s);
/* Finds the slot of a balancer's member, or claims a free one
 * (create != 0); NULL when there is none (create: the table is full). */
bbs_slot_t *bbs_shm_member(const proxy_balancer *b, const proxy_worker *w,
                           int create);
apr_size_t bbs_shm_capacity(void);
void bbs_shm_write(bbs_slot_t *slot, const bbs_record_t *rec);
/* 1 and a whole copy, or 0 when no consistent copy could be had. */
int bbs_shm_read(bbs_slot_t *slot, bbs_record_t *rec);

/* A request for an early probe, shared between children next to the
 * record. 1 when the flag was not up before: the caller wakes the
 * checker. */
int bbs_shm_request_probe(bbs_slot_t *slot);
int bbs_shm_take_probe_request(bbs_slot_t *slot);

/* Flags kept next to a record, each owned by one writer. */
#define BBS_SLOT_PARKED 0x1   /* parked here, away from mod_proxy_hcheck */
#define BBS_SLOT_MODULE_SET_STBY 0x2  /* hot standby set here, not by an admin */
#define BBS_SLOT_PANIC 0x4    /* the member's balancer is in panic */
#define BBS_SLOT_DOWN 0x8     /* the checks say out, panic or not */
#define BBS_SLOT_FAILED 0x10  /* the last check learned nothing (fail) */
#define BBS_SLOT_STANDBY_STATE 0x20 /* the node is in a standby state */
#define BBS_SLOT_MODULE_SET_HCFL 0x40    /* HcFl set here */
#define BBS_SLOT_ADMIN_CLAIMS_STBY 0x80 /* balancer-manager gave Stby to the admin */
#define BBS_SLOT_YIELDED 0x100 /* an admin took the module's Stby off */
#define BBS_SLOT_CHECKED 0x200 /* the member has been checked */
#define BBS_FLAG_GET (-1)
#define BBS_FLAG_CLEAR 0
#define BBS_FLAG_SET 1
/* Reads, sets or clears one flag; returns whether it was set before. */
int bbs_shm_flag(bbs_slot_t *slot, apr_uint32_t bit, int op);
apr_uint32_t bbs_shm_flags(bbs_slot_t *slot);
/* Replaces the bits of mask with those of bits, in one step. */
void bbs_shm_set_flags(bbs_slot_t *slot, apr_uint32_t mask,
                       apr_uint32_t bits);
/* The configuration generation the module's flags in the slot belong to
 * (0: none yet). */
apr_uint32_t bbs_shm_gen(bbs_slot_t *slot);
void bbs_shm_set_gen(bbs_slot_t *slot, apr_uint32_t gen);

/* BBStatusWarmup: the member's answer time (a running average, 0: none
 * yet), fed by the requests proxied to it. */
apr_uint32_t bbs_shm_latency(bbs_slot_t *slot);
void bbs_shm_note_latency(bbs_slot_t *slot, apr_uint32_t sample_us);
/* A node back from a restart is another process: its old answer time
 * says nothing of how it answers now. */
void bbs_shm_forget_latency(bbs_slot_t *slot);
/* Requests proxied to the member (BBStatusWarmup counts them), and how
 * many since the checker last asked (the checker alone asks). */
void bbs_shm_count_routed(bbs_slot_t *slot);
apr_uint32_t bbs_shm_routed_since(bbs_slot_t *slot);
/* How many requests a warming member may still be given before the
 * checker's next tick: lbmethods that choose the least loaded member
 * (bytraffic) would otherwise make up at once for what the ramp held
 * back. take: 1 and one less, or 0 when none is left (a member given a
 * request as its budget ran out goes on; the next tick sets it anew). */
void bbs_shm_set_warm_budget(bbs_slot_t *slot, apr_uint32_t n);
apr_uint32_t bbs_shm_warm_budget(bbs_slot_t *slot);
int bbs_shm_take_warm_budget(bbs_slot_t *slot);
/* Its ramp: share in thousandths of its full share (0: not warming), ramp
 * time done, when it came back. */
typedef struct {
    apr_uint32_t share;
    apr_uint32_t progress_ms;
    apr_uint32_t start_s;
    apr_uint32_t duration_ms;
    apr_uint32_t held;       /* its answers hold the ramp back */
} bbs_shm_warm_t;
void bbs_shm_warm(bbs_slot_t *slot, bbs_shm_warm_t *out);
void bbs_shm_set_warm(bbs_slot_t *slot, const bbs_shm_warm_t *w);
/* The share a request may give it now: BBS_SHARE_FULL when not warming. */
unsigned bbs_shm_warm_share(bbs_slot_t *slot);

/* FNV-1a of a string: slot placement and spreading first checks. */
apr_uint32_t bbs_hash(const char *s);

#endif /* MOD_BBSTATUS_SHM_H */
