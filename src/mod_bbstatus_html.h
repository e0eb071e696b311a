/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/* The diagnostics page (mod_bbstatus_html.c). */
#ifndef MOD_BBSTATUS_HTML_H
#define MOD_BBSTATUS_HTML_H

#include "mod_bbstatus_private.h"

/* Sends rows as the page; refresh: seconds between reloads, 0: none. */
void bbs_html_send(request_rec *r, apr_array_header_t *rows, int refresh);

#endif /* MOD_BBSTATUS_HTML_H */
