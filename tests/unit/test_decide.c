/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include <string.h>

#include <apr_strings.h>

#include "bbs_decide.h"
#include "bbs_test.h"

static bbs_result_t decide_body(const char *body, apr_size_t len, int code)
{
    bbs_rules_t rules;
    bbs_answer_t a;
    bbs_result_t r;

    bbs_rules_default(&rules);
    memset(&a, 0, sizeof(a));
    a.http_status = code;
    a.content_type = "application/json;charset=UTF-8";
    a.body = body;
    a.body_len = len;
    bbs_decide(&rules, &a, &r);
    return r;
}

/* A valid answer padded with spaces to exactly len bytes. */
static char *padded_running(apr_size_t len)
{
    char *b = apr_palloc(bbs_test_pool, len);

    memset(b, ' ', len);
    memcpy(b, "{\"state\":\"RUNNING\"}", 19);
    return b;
}

START_TEST(body_one_byte_under_the_default_limit_routes)
{
    bbs_result_t r = decide_body(padded_running(BBS_MAX_BODY_DEFAULT - 1),
                                 BBS_MAX_BODY_DEFAULT - 1, 200);
    ck_assert_int_eq(r.verdict, BBS_ROUTE);
}
END_TEST

START_TEST(body_at_the_default_limit_routes)
{
    bbs_result_t r = decide_body(padded_running(BBS_MAX_BODY_DEFAULT),
                                 BBS_MAX_BODY_DEFAULT, 200);
    ck_assert_int_eq(r.verdict, BBS_ROUTE);
}
END_TEST

START_TEST(body_one_byte_over_the_default_limit_fails_before_parsing)
{
    bbs_result_t r = decide_body(padded_running(BBS_MAX_BODY_DEFAULT + 1),
                                 BBS_MAX_BODY_DEFAULT + 1, 200);
    ck_assert_int_eq(r.verdict, BBS_FAIL);
    ck_assert_int_eq(r.has_state, 0);
    ck_assert_str_eq(r.reason, "body larger than 8192 bytes "
                               "(BBStatusMaxBody)");
}
END_TEST

START_TEST(hundred_thousand_nested_arrays_fail_without_recursing)
{
    apr_size_t n = 100000, i;
    char *b = apr_palloc(bbs_test_pool, 2 * n);
    bbs_rules_t rules;
    bbs_answer_t a;
    bbs_result_t r;

    for (i = 0; i < n; ++i) {
        b[i] = '[';
        b[n + i] = ']';
    }
    bbs_rules_default(&rules);
    rules.max_body = BBS_MAX_BODY_LIMIT;
    memset(&a, 0, sizeof(a));
    a.http_status = 200;
    a.body = b;
    a.body_len = 2 * n;
    bbs_decide(&rules, &a, &r);
    ck_assert_int_eq(r.verdict, BBS_FAIL);
    ck_assert_ptr_nonnull(strstr(r.reason, "maximum parsing depth reached"));
}
END_TEST

START_TEST(body_is_read_by_length_not_to_a_terminator)
{
    /* the buffer goes on past len: the core must not look there */
    static const char buf[] = "{\"state\":\"RUNNING\"}{\"state\":\"STOPPING\"}";
    bbs_result_t r = decide_body(buf, 19, 200);

    ck_assert_int_eq(r.verdict, BBS_ROUTE);
    ck_assert_str_eq(r.state, "RUNNING");
}
END_TEST

START_TEST(nul_byte_inside_the_state_string_fails)
{
    static const char buf[] = "{\"state\":\"RUN\0NING\"}";
    bbs_result_t r = decide_body(buf, sizeof(buf) - 1, 200);

    ck_assert_int_eq(r.verdict, BBS_FAIL);
    ck_assert_ptr_nonnull(strstr(r.reason, "body is not JSON"));
}
END_TEST

START_TEST(null_body_pointer_is_an_empty_body)
{
    bbs_result_t r = decide_body(NULL, 5, 200);

    ck_assert_int_eq(r.verdict, BBS_FAIL);
    ck_assert_str_eq(r.reason, "empty body (HTTP 200)");
}
END_TEST

START_TEST(transport_detail_is_part_of_the_reason)
{
    bbs_rules_t rules;
    bbs_answer_t a;
    bbs_result_t r;

    bbs_rules_default(&rules);
    memset(&a, 0, sizeof(a));
    a.transport = BBS_TX_TIMEOUT;
    a.detail = "no answer within 5 s\n";
    bbs_decide(&rules, &a, &r);
    ck_assert_int_eq(r.verdict, BBS_FAIL);
    ck_assert_str_eq(r.reason, "timed out: no answer within 5 s?");
}
END_TEST

START_TEST(a_redirect_never_counts_even_with_a_json_body)
{
    bbs_rules_t rules;
    bbs_answer_t a;
    bbs_result_t r;

    bbs_rules_default(&rules);
    memset(&a, 0, sizeof(a));
    a.http_status = 301;
    a.body = "{\"state\":\"RUNNING\"}";
    a.body_len = 19;
    bbs_decide(&rules, &a, &r);
    ck_assert_int_eq(r.verdict, BBS_FAIL);
    ck_assert_str_eq(r.reason, "redirect (HTTP 301) to '' is not followed");
}
END_TEST

START_TEST(the_http_code_alone_never_decides)
{
    /* Bitbucket says STARTING with 503, Jira says STOPPING with 200 */
    bbs_result_t starting = decide_body("{\"state\":\"STARTING\"}", 20, 503);
    bbs_result_t stopping = decide_body("{\"state\":\"STOPPING\"}", 20, 200);

    ck_assert_int_eq(starting.verdict, BBS_ROUTE);
    ck_assert_int_eq(stopping.verdict, BBS_BLOCK);
}
END_TEST

START_TEST(verdict_and_transport_names_are_stable)
{
    ck_assert_str_eq(bbs_verdict_name(BBS_ROUTE), "route");
    ck_assert_str_eq(bbs_verdict_name(BBS_BLOCK), "block");
    ck_assert_str_eq(bbs_verdict_name(BBS_FAIL), "fail");
    ck_assert_str_eq(bbs_transport_name(BBS_TX_REFUSED),
                     "connection refused");
    ck_assert_str_eq(bbs_transport_name((bbs_transport_e)99),
                     "probe failed");
}
END_TEST

TCase *decide_test_case(void)
{
    TCase *tc = tcase_create("decide");

    tcase_add_checked_fixture(tc, bbs_test_setup, bbs_test_teardown);
    tcase_add_test(tc, body_one_byte_under_the_default_limit_routes);
    tcase_add_test(tc, body_at_the_default_limit_routes);
    tcase_add_test(tc,
                   body_one_byte_over_the_default_limit_fails_before_parsing);
    tcase_add_test(tc, hundred_thousand_nested_arrays_fail_without_recursing);
    tcase_add_test(tc, body_is_read_by_length_not_to_a_terminator);
    tcase_add_test(tc, nul_byte_inside_the_state_string_fails);
    tcase_add_test(tc, null_body_pointer_is_an_empty_body);
    tcase_add_test(tc, transport_detail_is_part_of_the_reason);
    tcase_add_test(tc, a_redirect_never_counts_even_with_a_json_body);
    tcase_add_test(tc, the_http_code_alone_never_decides);
    tcase_add_test(tc, verdict_and_transport_names_are_stable);
    return tc;
}
