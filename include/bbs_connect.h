/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Words for a connect that failed in a way the probe has no verdict of its
 * own for (refused, timed out and reset are said by bbs_decide). Kept out
 * of the probe so the text an operator reads is unit-tested without a
 * server, and without SELinux.
 */
#ifndef BBS_CONNECT_H
#define BBS_CONNECT_H

#include <apr_errno.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Why connect() failed with rv (an apr_status_t or an errno value), for
 * the reason shown in the diagnostics: the likely cause where the system's
 * own text would mislead, else apr_strerror's text written into buf (len
 * bytes). Returns a static string or buf. */
const char *bbs_connect_cause(apr_status_t rv, char *buf, apr_size_t len);

#ifdef __cplusplus
}
#endif

#endif /* BBS_CONNECT_H */
