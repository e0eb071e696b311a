/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The head of an HTTP/1.x response as the probe reads it: its first
 * bytes, the status line and the header lines. The probe does the reading
 * (bounded, through httpd's filters); what counts as well-formed is said
 * here, so that every malformed head a node may send is unit-tested
 * without one.
 */
#ifndef BBS_HEAD_H
#define BBS_HEAD_H

#include <apr_pools.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What every HTTP/1.x status line begins with. */
#define BBS_HEAD_PREFIX "HTTP/1."

/* NULL when the first n bytes of a response can begin an HTTP/1.x status
 * line (they match BBS_HEAD_PREFIX as far as they go); else the words for
 * the reason, "it begins '...'", with what came (at most the prefix's
 * length, unprintable bytes as '?'). */
const char *bbs_head_not_http1(apr_pool_t *p, const char *got, apr_size_t n);

/* The status code of a status line of len bytes (without its CRLF):
 * "HTTP/1.x NNN", then nothing or a space and a reason phrase, which may
 * be empty. -1 when it is not one (000 is a code here: what it means is
 * bbs_decide's to say). */
int bbs_head_status(const char *line, apr_size_t len);

/* Splits a header line "Name: value" in place: line becomes the name,
 * *value the value without the white space around it. 0, line unchanged,
 * when it is not a header line (no colon, or nothing before it). */
int bbs_head_field(char *line, char **value);

/* Whether a response with this status has a body the probe reads: not an
 * interim (1xx), 204 or 304 answer, and not a redirect, which is reported
 * and never followed. */
int bbs_head_body_wanted(int status);

#ifdef __cplusplus
}
#endif

#endif /* BBS_HEAD_H */
