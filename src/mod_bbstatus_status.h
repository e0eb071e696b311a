/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* The server-status section (mod_bbstatus_status.c). */
#ifndef MOD_BBSTATUS_STATUS_H
#define MOD_BBSTATUS_STATUS_H

#include "mod_bbstatus_private.h"

int bbs_status_hook(request_rec *r, int flags);

#endif /* MOD_BBSTATUS_STATUS_H */
