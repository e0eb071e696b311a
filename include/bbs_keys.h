/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Names shared by the parser, the diagnostics output and the tests: the
 * unit tests include this header, and the integration suite reads the
 * JSON keys and decision words from it
 * (test_json_keys_and_decisions_are_the_headers), so none can drift.
 */
#ifndef BBS_KEYS_H
#define BBS_KEYS_H

#define BBS_MODULE_NAME "mod_bbstatus"
#define BBS_VERSION "0.1.0"
#define BBS_METHOD_NAME "BBSTATUS"
#define BBS_HANDLER_NAME "bbstatus"

/* what a node answers */
#define BBS_KEY_STATE "state"

/* decisions as the diagnostics show them */
#define BBS_DECISION_PENDING "pending"
#define BBS_DECISION_ROUTE "route"
#define BBS_DECISION_BLOCK "block"
#define BBS_DECISION_STANDBY "standby"
#define BBS_DECISION_PANIC "panic"

/* diagnostics JSON */
#define BBS_KEY_MODULE "module"
#define BBS_KEY_VERSION "version"
#define BBS_KEY_GENERATED_AT "generated_at"
#define BBS_KEY_BALANCERS "balancers"
#define BBS_KEY_VIRTUAL_HOST "virtual_host"
#define BBS_KEY_OTHER_VIRTUAL_HOSTS "other_virtual_hosts"
#define BBS_KEY_NAME "name"
#define BBS_KEY_MEMBERS "members"
#define BBS_KEY_HCMETHOD "hcmethod"
#define BBS_KEY_PROBE_URL "probe_url"
#define BBS_KEY_HTTP_STATUS "http_status"
#define BBS_KEY_DECISION "decision"
#define BBS_KEY_REASON "reason"
#define BBS_KEY_IN_ROTATION "in_rotation"
#define BBS_KEY_IN_ROTATION_STICKY "in_rotation_sticky"
#define BBS_KEY_FLAGS "flags"
#define BBS_KEY_CHECKED_AT "checked_at"
#define BBS_KEY_CHANGED_AT "changed_at"
#define BBS_KEY_LATENCY_MS "latency_ms"
#define BBS_KEY_PASSES "passes"
#define BBS_KEY_FAILS "fails"
#define BBS_KEY_HCPASSES "hcpasses"
#define BBS_KEY_HCFAILS "hcfails"
#define BBS_KEY_CHECKS "checks"
#define BBS_KEY_FAILURES "failures"
#define BBS_KEY_HISTORY "history"
#define BBS_KEY_WARMUP "warmup"
#define BBS_KEY_SHARE "share"
#define BBS_KEY_SECONDS_LEFT "seconds_left"
#define BBS_KEY_HELD "held"
#define BBS_KEY_TEXT "text"
#define BBS_KEY_ANSWER_MS "answer_ms"
#define BBS_KEY_AT "at"
#define BBS_KEY_FROM "from"
#define BBS_KEY_TO "to"
#define BBS_KEY_INTERVAL_MS "interval_ms"
#define BBS_KEY_PANIC "panic"

#endif /* BBS_KEYS_H */
