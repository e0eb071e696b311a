/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* An administrator's Hot Standby in balancer-manager
 * (mod_bbstatus_manager.c). */
#ifndef MOD_BBSTATUS_MANAGER_H
#define MOD_BBSTATUS_MANAGER_H

#include "mod_bbstatus_private.h"

void bbs_manager_register(void);
void bbs_manager_insert_filter(request_rec *r);
int bbs_manager_log_transaction(request_rec *r);

#endif /* MOD_BBSTATUS_MANAGER_H */
