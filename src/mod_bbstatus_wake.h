/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* Waking the checker at once for members whose requests failed
 * (mod_bbstatus_wake.c). fn runs in the checking child, under lock. */
#ifndef MOD_BBSTATUS_WAKE_H
#define MOD_BBSTATUS_WAKE_H

#include "apr_thread_mutex.h"

#include "mod_bbstatus_private.h"

typedef struct bbs_wake_t bbs_wake_t;
typedef void bbs_wake_fn(void *baton);
void bbs_wake_post_config(server_rec *s);
void bbs_wake_signal(void);
bbs_wake_t *bbs_wake_start(apr_pool_t *p, apr_thread_mutex_t *lock,
                           bbs_wake_fn *fn, void *baton, server_rec *s);
void bbs_wake_stop(bbs_wake_t *w);

#endif /* MOD_BBSTATUS_WAKE_H */
