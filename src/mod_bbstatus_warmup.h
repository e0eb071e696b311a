/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* The request path of BBStatusWarmup and of the first checks
 * (mod_bbstatus_warmup.c). */
#ifndef MOD_BBSTATUS_WARMUP_H
#define MOD_BBSTATUS_WARMUP_H

#include "mod_bbstatus_private.h"

/* A proxy pre_request hook, ordered before mod_proxy_balancer's. */
int bbs_warmup_pre_request(proxy_worker **worker, proxy_balancer **balancer,
                           request_rec *r, proxy_server_conf *conf,
                           char **url);
/* Folds the time r took into w's answer time, where BBStatusWarmup is on;
 * from proxy post_request. */
void bbs_warmup_note(request_rec *r, proxy_balancer *b, proxy_worker *w);

#endif /* MOD_BBSTATUS_WARMUP_H */
