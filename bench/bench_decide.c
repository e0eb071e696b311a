/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * How many parse+decide operations one core does per second, on the body
 * a node sends every check and on a 4 KiB body. A measurement, not a test:
 * `make bench-decide` prints it, BENCHMARKS.md records it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <apr_general.h>

#include "bbs_decide.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs batches until at least min_s seconds have passed. */
static double rate(const char *body, size_t len, double min_s,
                   bbs_verdict_e expect)
{
    bbs_rules_t rules;
    bbs_answer_t a;
    bbs_result_t r;
    double start = now_s(), took;
    long n = 0;
    int i;

    bbs_rules_default(&rules);
    memset(&a, 0, sizeof(a));
    a.http_status = 200;
    a.content_type = "application/json;charset=UTF-8";
    a.body = body;
    a.body_len = len;
    do {
        for (i = 0; i < 10000; ++i) {
            bbs_decide(&rules, &a, &r);
        }
        n += 10000;
        took = now_s() - start;
    } while (took < min_s);
    if (r.verdict != expect) {
        fprintf(stderr, "unexpected verdict: %s\n", r.reason);
        exit(1);
    }
    return (double)n / took;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 2.0;
    static const char typical[] = "{\"state\":\"RUNNING\"}";
    char big[4096];
    size_t off;

    apr_initialize();
    /* a 4 KiB answer: the state among padding fields */
    off = (size_t)snprintf(big, sizeof(big), "{\"state\":\"RUNNING\"");
    while (off + 40 < sizeof(big)) {
        off += (size_t)snprintf(big + off, sizeof(big) - off,
                                ",\"pad%04zu\":\"abcdefghijklmnopqrst\"", off);
    }
    big[off++] = '}';
    while (off < sizeof(big)) {
        big[off++] = ' ';
    }
    printf("decide {\"state\":\"RUNNING\"} (19 bytes): %.0f ops/s\n",
           rate(typical, sizeof(typical) - 1, secs, BBS_ROUTE));
    printf("decide 4096-byte body:                 %.0f ops/s\n",
           rate(big, sizeof(big), secs, BBS_ROUTE));
    apr_terminate();
    return 0;
}
