/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* The hcmethod row the module claims (mod_bbstatus_method.c). */
#ifndef MOD_BBSTATUS_METHOD_H
#define MOD_BBSTATUS_METHOD_H

#include "mod_bbstatus_private.h"

int bbs_method_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp);
/* Asked several times for every proxied request: inline. */
static APR_INLINE int bbs_method_is(const proxy_worker *w)
{
    return w->s->method == PROVIDER;
}
const char *bbs_method_requirements(void);

#endif /* MOD_BBSTATUS_METHOD_H */
