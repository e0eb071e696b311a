/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* Sticky sessions and standby (mod_bbstatus_sticky.c). */
#ifndef MOD_BBSTATUS_STICKY_H
#define MOD_BBSTATUS_STICKY_H

#include "mod_bbstatus_private.h"

int bbs_sticky_pre_request(proxy_worker **worker, proxy_balancer **balancer,
                           request_rec *r, proxy_server_conf *conf,
                           char **url);
/* The route a request names for balancer b, as mod_proxy_balancer finds
 * it (NULL: none); *sticky is the name it was found under. */
const char *bbs_sticky_route(request_rec *r, const proxy_balancer *b,
                             const char *url, const char **sticky);
/* A member the lbmethod would choose before the hot standby `me`. */
int bbs_better_member_usable(proxy_balancer *b, const proxy_worker *me);
/* Whether a request whose route names w reaches it now; -1 when no
 * request can name it (no stickysession, or w has no route). */
int bbs_sticky_in_rotation(proxy_balancer *b, proxy_worker *w);

#endif /* MOD_BBSTATUS_STICKY_H */
