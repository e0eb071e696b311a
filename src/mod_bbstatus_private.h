/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * What every glue file needs: the module record, the httpd and core
 * headers, the log ID macro. Each unit declares its own functions in its
 * own header (mod_bbstatus_<unit>.h); scripts/check-guards.sh keeps the
 * units in layers, so that no unit calls one above it. Only the glue
 * includes httpd; the core (bbs_*.c) stays free of it.
 */
#ifndef MOD_BBSTATUS_PRIVATE_H
#define MOD_BBSTATUS_PRIVATE_H

#include "httpd.h"
#include "http_config.h"
#include "http_log.h"
#include "mod_proxy.h"

#include "mod_bbstatus_compat.h"

#include "bbs_decide.h"
#include "bbs_keys.h"

extern module AP_MODULE_DECLARE_DATA bbstatus_module;
APLOG_USE_MODULE(bbstatus);

/* The ID that starts a log line, as in BBSLOGNO(0010) "text": logs
 * "BBS0010: text". Every ID is used once and listed in README's log
 * table (scripts/check-guards.sh). */
#define BBSLOGNO(n) "BBS" #n ": "

/* Unset markers for merged configuration. */
#define BBS_UNSET (-1)

#endif /* MOD_BBSTATUS_PRIVATE_H */
