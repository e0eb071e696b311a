/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* An administrator's Hot Standby in balancer-manager
 * (mod_bbstatus_manager.c). */
#ifndef MOD_BBSTATUS_MANAGER_H
#define MOD_BBSTATUS_MANAGER_H

#include "mod_bbstatus_private.h"

void bbs_manager_register_hooks(void);

#endif /* MOD_BBSTATUS_MANAGER_H */
