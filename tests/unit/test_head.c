/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The head of a response as the probe judges it: first bytes, status
 * lines, header lines, and which answers have a body worth reading.
 */
#include <string.h>

#include <apr_strings.h>

#include "bbs_head.h"
#include "bbs_test.h"

static const struct {
    const char *name;
    const char *line;
    int status; /* -1: not a status line */
} status_rows[] = {
    {"a status line with a reason phrase", "HTTP/1.1 200 OK", 200},
    {"HTTP/1.0", "HTTP/1.0 503 Service Unavailable", 503},
    {"Tomcat's empty reason phrase after the space", "HTTP/1.1 200 ", 200},
    {"no reason phrase and no space", "HTTP/1.1 200", 200},
    {"two spaces before the reason phrase", "HTTP/1.1 200  OK", 200},
    {"any HTTP/1 minor version", "HTTP/1.9 404 Not Found", 404},
    {"000 is a code, for the decision to judge", "HTTP/1.1 000 X", 0},
    {"two digits are not a code", "HTTP/1.1 20", -1},
    {"four digits are not a code", "HTTP/1.1 2000 OK", -1},
    {"a reason phrase right after the code", "HTTP/1.1 200OK", -1},
    {"letters are not a code", "HTTP/1.1 abc OK", -1},
    {"two spaces before the code", "HTTP/1.1  200 OK", -1},
    {"a tab before the code", "HTTP/1.1\t200 OK", -1},
    {"HTTP/2 is not HTTP/1.x", "HTTP/2 200", -1},
    {"the protocol name is case-sensitive", "http/1.1 200 OK", -1},
    {"garbage", "SSH-2.0-OpenSSH_9.6", -1},
    {"an empty line", "", -1},
};

START_TEST(status_lines_are_judged)
{
    const char *l = status_rows[_i].line;

    ck_assert_msg(bbs_head_status(l, strlen(l)) == status_rows[_i].status,
                  "%s: got %d", status_rows[_i].name,
                  bbs_head_status(l, strlen(l)));
}
END_TEST

START_TEST(a_status_line_is_read_by_its_length)
{
    /* the reader's buffer may hold more than the line it read */
    ck_assert_int_eq(bbs_head_status("HTTP/1.1 200 OK", 12), 200);
    ck_assert_int_eq(bbs_head_status("HTTP/1.1 200 OK", 11), -1);
}
END_TEST

static const struct {
    const char *name;
    const char *got;
    apr_size_t n;
    const char *words; /* NULL: may be HTTP/1.x */
} prefix_rows[] = {
    {"the prefix itself", "HTTP/1.", 7, NULL},
    {"a short read that matches so far", "HTTP/", 5, NULL},
    {"nothing read contradicts nothing", "", 0, NULL},
    {"more than the prefix is looked at as far as the prefix",
     "HTTP/1.1 200", 12, NULL},
    {"HTTP/2", "HTTP/2 ", 7, "it begins 'HTTP/2 '"},
    {"an HTTP/0.9 body", "<html>\n", 7, "it begins '<html>?'"},
    {"a TLS handshake shows as unprintable bytes",
     "\x16\x03\x01\x02\x00\x01\x00", 7, "it begins '\?\?\?\?\?\?\?'"},
    {"what is shown is cut at the prefix's length", "GARBAGE_LONG", 12,
     "it begins 'GARBAGE'"},
    {"a short read that does not match", "SSH", 3, "it begins 'SSH'"},
};

START_TEST(first_bytes_are_judged)
{
    const char *w = bbs_head_not_http1(bbs_test_pool, prefix_rows[_i].got,
                                       prefix_rows[_i].n);

    if (!prefix_rows[_i].words) {
        ck_assert_msg(w == NULL, "%s: got %s", prefix_rows[_i].name, w);
    }
    else {
        ck_assert_msg(w && !strcmp(w, prefix_rows[_i].words), "%s: got %s",
                      prefix_rows[_i].name, w ? w : "(none)");
    }
}
END_TEST

static const struct {
    const char *name;
    const char *line;
    const char *field, *value; /* field NULL: not a header line */
} field_rows[] = {
    {"a header line", "Content-Type: application/json", "Content-Type",
     "application/json"},
    {"no space after the colon", "Content-Type:application/json",
     "Content-Type", "application/json"},
    {"white space around the value goes", "X-A: \t a b \t ", "X-A", "a b"},
    {"an empty value", "X-A:", "X-A", ""},
    {"the first colon ends the name", "Location: http://h:8080/s",
     "Location", "http://h:8080/s"},
    {"a space before the colon stays in the name", "Content-Type : x",
     "Content-Type ", "x"},
    {"no name", ": value", NULL, NULL},
    {"no colon", "no colon here", NULL, NULL},
    {"an empty line is no header", "", NULL, NULL},
};

START_TEST(header_lines_are_split)
{
    char *line = apr_pstrdup(bbs_test_pool, field_rows[_i].line);
    char *value = NULL;
    int ok = bbs_head_field(line, &value);

    if (!field_rows[_i].field) {
        ck_assert_msg(!ok, "%s", field_rows[_i].name);
        ck_assert_str_eq(line, field_rows[_i].line);
        return;
    }
    ck_assert_msg(ok, "%s", field_rows[_i].name);
    ck_assert_str_eq(line, field_rows[_i].field);
    ck_assert_str_eq(value, field_rows[_i].value);
}
END_TEST

START_TEST(only_answers_with_content_have_a_body_read)
{
    static const struct {
        int status, wanted;
    } rows[] = {
        {0, 0},   {100, 0}, {101, 0}, {199, 0}, {200, 1}, {204, 0},
        {206, 1}, {301, 0}, {302, 0}, {304, 0}, {399, 0}, {400, 1},
        {404, 1}, {503, 1}, {599, 1},
    };
    apr_size_t i;

    for (i = 0; i < sizeof(rows) / sizeof(rows[0]); ++i) {
        ck_assert_msg(bbs_head_body_wanted(rows[i].status) == rows[i].wanted,
                      "HTTP %d", rows[i].status);
    }
}
END_TEST

TCase *head_test_case(void)
{
    TCase *tc = tcase_create("head");

    tcase_add_checked_fixture(tc, bbs_test_setup, bbs_test_teardown);
    tcase_add_loop_test(tc, status_lines_are_judged, 0,
                        (int)(sizeof(status_rows) / sizeof(status_rows[0])));
    tcase_add_test(tc, a_status_line_is_read_by_its_length);
    tcase_add_loop_test(tc, first_bytes_are_judged, 0,
                        (int)(sizeof(prefix_rows) / sizeof(prefix_rows[0])));
    tcase_add_loop_test(tc, header_lines_are_split, 0,
                        (int)(sizeof(field_rows) / sizeof(field_rows[0])));
    tcase_add_test(tc, only_answers_with_content_have_a_body_read);
    return tc;
}
