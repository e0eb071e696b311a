/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* One balancer, one set of settings (mod_bbstatus_confcheck.c). */
#ifndef MOD_BBSTATUS_CONFCHECK_H
#define MOD_BBSTATUS_CONFCHECK_H

#include "mod_bbstatus_private.h"

/* Refuses a balancer shared by servers that give it different settings. */
int bbs_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                     server_rec *s);

#endif /* MOD_BBSTATUS_CONFCHECK_H */
