/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Data-driven decisions: every folder under cases/ holds what a node sent
 * (meta: transport, status, headers, limits; body: raw bytes) and what the
 * core must make of it (expect). A new hostile answer is a new folder.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <apr_tables.h>

#include "bbs_decide.h"
#include "bbs_test.h"

#define MAX_CASES 512

static char *case_names[MAX_CASES];
static int case_count;

static char *read_file(apr_pool_t *p, const char *path, apr_size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f) {
        *len = 0;
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = apr_palloc(p, (apr_size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

/* "key value" lines; the value runs to the end of the line. */
static apr_table_t *read_pairs(apr_pool_t *p, const char *path)
{
    apr_table_t *t = apr_table_make(p, 8);
    apr_size_t len;
    char *text = read_file(p, path, &len), *line, *last;

    if (!text) {
        return t;
    }
    for (line = apr_strtok(text, "\n", &last); line;
         line = apr_strtok(NULL, "\n", &last)) {
        char *sp = strchr(line, ' ');
        if (sp) {
            *sp = '\0';
            apr_table_set(t, line, sp + 1);
        }
    }
    return t;
}

static bbs_transport_e transport_of(const char *name)
{
    static const struct {
        const char *name;
        bbs_transport_e t;
    } map[] = {
        {"refused", BBS_TX_REFUSED}, {"timeout", BBS_TX_TIMEOUT},
        {"reset", BBS_TX_RESET},     {"empty", BBS_TX_EMPTY},
        {"tls", BBS_TX_TLS},         {"dns", BBS_TX_DNS},
        {"protocol", BBS_TX_PROTOCOL}, {"body", BBS_TX_BODY},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(map) / sizeof(map[0]); ++i) {
        if (!strcmp(map[i].name, name)) {
            return map[i].t;
        }
    }
    return BBS_TX_OTHER;
}

static const bbs_stateset_t *set_of(const char *words)
{
    const char *argv[16];
    int argc = 0;
    char *w, *last, *copy = apr_pstrdup(bbs_test_pool, words);
    const char *err = NULL;
    const bbs_stateset_t *set;

    if (!strcmp(words, "none")) {
        return bbs_stateset_empty();
    }
    for (w = apr_strtok(copy, " ", &last); w && argc < 16;
         w = apr_strtok(NULL, " ", &last)) {
        argv[argc++] = w;
    }
    set = bbs_stateset_make(bbs_test_pool, argc, argv, &err);
    ck_assert_msg(set != NULL, "bad set '%s': %s", words, err);
    return set;
}

/* Reasons and states reach logs and terminals: printable ASCII only. */
static int printable(const char *s)
{
    for (; *s; ++s) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

START_TEST(case_decides_as_expected)
{
    const char *name = case_names[_i];
    const char *dir = apr_pstrcat(bbs_test_pool, bbs_test_cases_dir, "/",
                                  name, NULL);
    apr_table_t *meta = read_pairs(bbs_test_pool,
                                   apr_pstrcat(bbs_test_pool, dir, "/meta",
                                               NULL));
    apr_table_t *expect = read_pairs(bbs_test_pool,
                                     apr_pstrcat(bbs_test_pool, dir,
                                                 "/expect", NULL));
    bbs_answer_t a;
    bbs_rules_t rules;
    bbs_result_t r;
    const char *v;

    memset(&a, 0, sizeof(a));
    bbs_rules_default(&rules);
    a.body = read_file(bbs_test_pool,
                       apr_pstrcat(bbs_test_pool, dir, "/body", NULL),
                       &a.body_len);
    if ((v = apr_table_get(meta, "transport"))) {
        a.transport = transport_of(v);
    }
    if ((v = apr_table_get(meta, "status"))) {
        a.http_status = atoi(v);
    }
    a.content_type = apr_table_get(meta, "content_type");
    a.content_encoding = apr_table_get(meta, "content_encoding");
    a.location = apr_table_get(meta, "location");
    a.body_truncated = apr_table_get(meta, "truncated") != NULL;
    if ((v = apr_table_get(meta, "max_body"))) {
        ck_assert_ptr_null(bbs_parse_size(v, &rules.max_body));
    }
    if ((v = apr_table_get(meta, "route"))) {
        rules.route = set_of(v);
    }
    if ((v = apr_table_get(meta, "standby"))) {
        rules.standby = set_of(v);
    }

    bbs_decide(&rules, &a, &r);

    ck_assert_msg(r.reason[0] != '\0', "%s: empty reason", name);
    ck_assert_msg(printable(r.reason), "%s: unprintable reason", name);
    ck_assert_msg(printable(r.state), "%s: unprintable state", name);
    if ((v = apr_table_get(expect, "verdict"))) {
        ck_assert_msg(!strcmp(bbs_verdict_name(r.verdict), v),
                      "%s: verdict %s, expected %s (reason: %s)", name,
                      bbs_verdict_name(r.verdict), v, r.reason);
    }
    if ((v = apr_table_get(expect, "state"))) {
        ck_assert_msg(r.has_state && !strcmp(r.state, v),
                      "%s: state '%s', expected '%s'", name,
                      r.has_state ? r.state : "(none)", v);
    }
    if ((v = apr_table_get(expect, "has_state"))) {
        ck_assert_msg(r.has_state == atoi(v), "%s: has_state %d", name,
                      r.has_state);
    }
    if ((v = apr_table_get(expect, "standby"))) {
        ck_assert_msg(r.standby == atoi(v), "%s: standby %d, expected %s",
                      name, r.standby, v);
    }
    if ((v = apr_table_get(expect, "reason"))) {
        ck_assert_msg(strstr(r.reason, v) != NULL,
                      "%s: reason '%s' lacks '%s'", name, r.reason, v);
    }
}
END_TEST

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

TCase *cases_test_case(void)
{
    TCase *tc = tcase_create("cases");
    DIR *d = opendir(bbs_test_cases_dir);
    struct dirent *e;

    if (!d) {
        fprintf(stderr, "cannot open %s\n", bbs_test_cases_dir);
        exit(2);
    }
    while ((e = readdir(d)) && case_count < MAX_CASES) {
        if (e->d_name[0] != '.') {
            case_names[case_count++] = strdup(e->d_name);
        }
    }
    closedir(d);
    if (case_count == 0) {
        fprintf(stderr, "no cases in %s\n", bbs_test_cases_dir);
        exit(2);
    }
    qsort(case_names, (size_t)case_count, sizeof(char *), by_name);
    tcase_add_checked_fixture(tc, bbs_test_setup, bbs_test_teardown);
    tcase_add_loop_test(tc, case_decides_as_expected, 0, case_count);
    return tc;
}
