/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* Retrying what a leaving member answered (mod_bbstatus_retry.c). */
#ifndef MOD_BBSTATUS_RETRY_H
#define MOD_BBSTATUS_RETRY_H

#include "mod_bbstatus_private.h"

void bbs_retry_register_hooks(void);

#endif /* MOD_BBSTATUS_RETRY_H */
