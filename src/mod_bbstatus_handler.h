/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* The diagnostics handler: JSON, Prometheus and the page, negotiated
 * (mod_bbstatus_handler.c). */
#ifndef MOD_BBSTATUS_HANDLER_H
#define MOD_BBSTATUS_HANDLER_H

#include "mod_bbstatus_private.h"

int bbs_handler(request_rec *r);

#endif /* MOD_BBSTATUS_HANDLER_H */
