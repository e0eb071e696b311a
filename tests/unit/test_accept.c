/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Accept negotiation, one row per header: the weights it gives JSON and
 * HTML in thousandths, and whether the diagnostics answer with JSON.
 */
#include "bbs_accept.h"
#include "bbs_test.h"

static const struct {
    const char *name;
    const char *accept;
    int json, html, prefers_json;
} rows[] = {
    {"json alone is json", "application/json", 1000, 0, 1},
    {"html alone is html", "text/html", 0, 1000, 0},
    {"an empty header accepts neither, so html", "", 0, 0, 0},
    {"a tie is html", "application/json, text/html", 1000, 1000, 0},
    {"any type is a tie, so html", "*/*", 1000, 1000, 0},
    {"q=0 means not acceptable", "application/json;q=0, text/html;q=0",
     0, 0, 0},
    {"q=0 on json beats any type", "application/json;q=0, */*", 0, 1000, 0},
    {"a thousandth above q=0 is json", "text/html;q=0, application/json;q=0.001",
     1, 0, 1},
    {"any subtype of application weighs for json",
     "application/*;q=0.9, text/html;q=0.8", 900, 800, 1},
    {"the most specific range wins even when it weighs less",
     "application/*, application/json;q=0.5", 500, 0, 1},
    {"a specific range wins over any type",
     "*/*;q=0.1, application/json;q=0.2", 200, 100, 1},
    {"text/* wins over any type for html",
     "text/*;q=0.5, */*;q=0.9, application/json;q=0.4", 400, 500, 0},
    {"of two equal ranges the heavier counts",
     "application/json;q=0.2, application/json;q=0.7", 700, 0, 1},
    {"any type with a named subtype matches nothing", "*/json", 0, 0, 0},
    {"a weight above 1 makes the range absent",
     "application/json;q=2, text/html;q=0.5", 0, 500, 0},
    {"1.5 is above 1 too", "application/json;q=1.5", 0, 0, 0},
    {"a weight that is not a number makes the range absent",
     "application/json;q=abc", 0, 0, 0},
    {"an empty weight makes the range absent", "application/json;q=", 0, 0,
     0},
    {"four decimals make the range absent", "application/json;q=0.1234", 0,
     0, 0},
    {"a malformed range leaves the less specific one",
     "application/json;q=0.9x, application/*;q=0.7, text/html;q=0.5", 700,
     500, 1},
    {"1.000 is a weight", "application/json;q=1.000", 1000, 0, 1},
    {"0. is a weight", "application/json;q=0., text/html;q=0.", 0, 0, 0},
    {"other parameters are skipped", "application/json;level=1;q=0.3",
     300, 0, 1},
    {"the last weight of a range counts", "application/json;q=0.3;q=0.6",
     600, 0, 1},
    {"a bad weight after a good one makes the range absent",
     "application/json;q=0.6;q=bad", 0, 0, 0},
    {"spaces around types, slashes and parameters are allowed",
     " application / json ;  q=0.8 ,text/html;q=0.7 ", 800, 700, 1},
    {"spaces around the equals sign make it no weight",
     "application/json;q=0.5, text/html;q = 0.1", 500, 1000, 0},
    {"types, subtypes and q are case-insensitive",
     "Application/JSON;Q=0.5, TEXT/Html;q=0.4", 500, 400, 1},
    {"ranges without a type or subtype are skipped",
     "/json, application/, json, text/html;q=0.1", 0, 100, 0},
};

START_TEST(accept_weighs_json_and_html)
{
    const char *a = rows[_i].accept;

    ck_assert_msg(bbs_accept_weight(bbs_test_pool, a, "application", "json")
                      == rows[_i].json,
                  "%s: json", rows[_i].name);
    ck_assert_msg(bbs_accept_weight(bbs_test_pool, a, "text", "html")
                      == rows[_i].html,
                  "%s: html", rows[_i].name);
    ck_assert_msg(bbs_accept_prefers_json(bbs_test_pool, a)
                      == rows[_i].prefers_json,
                  "%s: choice", rows[_i].name);
}
END_TEST

START_TEST(no_accept_header_is_html)
{
    ck_assert_int_eq(bbs_accept_prefers_json(bbs_test_pool, NULL), 0);
}
END_TEST

START_TEST(the_header_is_left_as_it_was)
{
    static const char accept[] = "application/json;q=0.5, text/html";

    bbs_accept_weight(bbs_test_pool, accept, "text", "html");
    ck_assert_str_eq(accept, "application/json;q=0.5, text/html");
}
END_TEST

TCase *accept_test_case(void)
{
    TCase *tc = tcase_create("accept");

    tcase_add_checked_fixture(tc, bbs_test_setup, bbs_test_teardown);
    tcase_add_loop_test(tc, accept_weighs_json_and_html, 0,
                        (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(tc, no_accept_header_is_html);
    tcase_add_test(tc, the_header_is_left_as_it_was);
    return tc;
}
