/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* Scheduling the checks on a thread pool (mod_bbstatus_checker.c). Every
 * call but create is made under the lock given to create. */
#ifndef MOD_BBSTATUS_CHECKER_H
#define MOD_BBSTATUS_CHECKER_H

#include "apr_thread_mutex.h"

#include "mod_bbstatus_private.h"

typedef struct bbs_checker_t bbs_checker_t;

bbs_checker_t *bbs_checker_create(apr_pool_t *pconf, server_rec *s,
                                  int threads, apr_thread_mutex_t *lock);
void bbs_checker_start(bbs_checker_t *ck);
/* Waits for the checks in flight, each bounded by BBStatusTimeout. */
void bbs_checker_stop(bbs_checker_t *ck);
int bbs_checker_running(const bbs_checker_t *ck);
void bbs_checker_tick(bbs_checker_t *ck);

#endif /* MOD_BBSTATUS_CHECKER_H */
