/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * libFuzzer target for the decision core. The first bytes of the input
 * choose the HTTP code, the transport outcome, the headers and the body
 * limit; the rest is the body. Whatever comes in, bbs_decide must end in a
 * verdict with a non-empty, printable, terminated reason and state.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <apr_general.h>

#include "bbs_decide.h"

static const char *const content_types[] = {
    NULL, "application/json", "text/html; charset=UTF-8", "text/plain",
    "application/json;charset=UTF-8", ""
};
static const char *const encodings[] = {NULL, "gzip", "identity", ""};

static void check_text(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);

    if (n == cap) {
        abort(); /* not terminated */
    }
    for (; *s; ++s) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) {
            abort(); /* operators must get printable text */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int initialized;
    bbs_rules_t rules;
    bbs_answer_t a;
    bbs_result_t r;

    if (!initialized) {
        apr_initialize();
        initialized = 1;
    }
    if (size < 4) {
        return 0;
    }
    bbs_rules_default(&rules);
    memset(&a, 0, sizeof(a));
    a.http_status = 100 + (data[0] * 256 + data[1]) % 500;
    a.transport = (data[2] & 0x80) ? (bbs_transport_e)(data[2] % 11)
                                   : BBS_TX_OK;
    a.content_type = content_types[(data[3] & 0x7) % 6];
    a.content_encoding = encodings[(data[3] >> 3) % 4];
    a.location = (data[3] & 0x40) ? "/login.jsp?os_destination=%2Fstatus"
                                  : NULL;
    if (data[3] & 0x80) {
        rules.max_body = 1 + data[2];
    }
    a.body = (const char *)data + 4;
    a.body_len = size - 4;

    bbs_decide(&rules, &a, &r);

    if (r.verdict != BBS_ROUTE && r.verdict != BBS_BLOCK
        && r.verdict != BBS_FAIL) {
        abort();
    }
    if (!r.reason[0]) {
        abort();
    }
    check_text(r.reason, sizeof(r.reason));
    check_text(r.state, sizeof(r.state));
    if (r.verdict != BBS_FAIL && !r.has_state) {
        abort();
    }
    return 0;
}
