/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* Which child checks: the mod_watchdog callback and the lease
 * (mod_bbstatus_watchdog.c). */
#ifndef MOD_BBSTATUS_WATCHDOG_H
#define MOD_BBSTATUS_WATCHDOG_H

#include "mod_bbstatus_private.h"

int bbs_watchdog_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                             apr_pool_t *ptemp, server_rec *s);
void bbs_watchdog_child_init(apr_pool_t *pchild, server_rec *s);

#endif /* MOD_BBSTATUS_WATCHDOG_H */
