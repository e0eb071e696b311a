/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include <string.h>

#include "bbs_decide.h"
#include "bbs_test.h"

static bbs_stateset_t *make(int argc, const char *const *argv,
                            const char **err)
{
    *err = NULL;
    return bbs_stateset_make(bbs_test_pool, argc, argv, err);
}

START_TEST(default_route_set_is_the_documented_one)
{
    ck_assert_str_eq(bbs_stateset_str(bbs_stateset_default_route(),
                                      bbs_test_pool),
                     "STARTING FIRST_RUN RUNNING MAINTENANCE");
    ck_assert_str_eq(bbs_stateset_str(bbs_stateset_default_standby(),
                                      bbs_test_pool),
                     "STARTING MAINTENANCE");
    ck_assert_str_eq(bbs_stateset_str(bbs_stateset_empty(), bbs_test_pool),
                     "none");
}
END_TEST

START_TEST(names_are_upper_cased_deduplicated_and_matched_in_any_case)
{
    const char *argv[] = {"running", "Running", "first_run"};
    const char *err;
    bbs_stateset_t *s = make(3, argv, &err);

    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(bbs_stateset_count(s), 2);
    ck_assert_str_eq(bbs_stateset_str(s, bbs_test_pool), "RUNNING FIRST_RUN");
    ck_assert(bbs_stateset_has(s, "rUnNiNg"));
    ck_assert(!bbs_stateset_has(s, "RUNNIN"));
}
END_TEST

START_TEST(sets_are_the_same_whatever_the_order)
{
    const char *ab[] = {"RUNNING", "starting"};
    const char *ba[] = {"STARTING", "running"};
    const char *a[] = {"RUNNING"};
    const char *ac[] = {"RUNNING", "FIRST_RUN"};
    const char *err;

    ck_assert(bbs_stateset_same(make(2, ab, &err), make(2, ba, &err)));
    ck_assert(!bbs_stateset_same(make(2, ab, &err), make(1, a, &err)));
    ck_assert(!bbs_stateset_same(make(2, ab, &err), make(2, ac, &err)));
    ck_assert(bbs_stateset_same(bbs_stateset_empty(), bbs_stateset_empty()));
    ck_assert(!bbs_stateset_same(bbs_stateset_empty(), make(1, a, &err)));
}
END_TEST

START_TEST(an_empty_list_is_refused)
{
    const char *err;

    ck_assert_ptr_null(make(0, NULL, &err));
    ck_assert_str_eq(err, "needs at least one state name");
}
END_TEST

START_TEST(a_name_with_other_characters_is_refused_and_named)
{
    const char *argv[] = {"RUNNING", "STOP-PING"};
    const char *err;

    ck_assert_ptr_null(make(2, argv, &err));
    ck_assert_str_eq(err, "'STOP-PING' is not a state name (only A-Z a-z "
                          "0-9 _)");
}
END_TEST

START_TEST(an_empty_or_overlong_name_is_refused)
{
    const char *empty[] = {""};
    const char *longer[] = {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                            "AAAAAAAAAAAAAAAAAA"};
    const char *err;

    ck_assert_ptr_null(make(1, empty, &err));
    ck_assert_ptr_nonnull(strstr(err, "empty state name"));
    ck_assert_ptr_null(make(1, longer, &err));
    ck_assert_ptr_nonnull(strstr(err, "longer than 63"));
}
END_TEST

START_TEST(sizes_parse_with_units_within_one_byte_and_one_mebibyte)
{
    apr_size_t n = 0;

    ck_assert_ptr_null(bbs_parse_size("8192", &n));
    ck_assert_uint_eq(n, 8192);
    ck_assert_ptr_null(bbs_parse_size("16k", &n));
    ck_assert_uint_eq(n, 16384);
    ck_assert_ptr_null(bbs_parse_size("1M", &n));
    ck_assert_uint_eq(n, 1048576);
    ck_assert_ptr_null(bbs_parse_size("1", &n));
    ck_assert_uint_eq(n, 1);
}
END_TEST

START_TEST(bad_sizes_are_refused)
{
    static const char *const bad[] = {
        "0", "", "-1", "1048577", "2M", "1025k", "12x", "k", " 5",
        "99999999999999999999999", "1.5k", NULL
    };
    apr_size_t n = 7;
    int i;

    for (i = 0; bad[i]; ++i) {
        ck_assert_msg(bbs_parse_size(bad[i], &n) != NULL, "'%s' accepted",
                      bad[i]);
    }
    ck_assert_uint_eq(n, 7);
    ck_assert_ptr_nonnull(bbs_parse_size(NULL, &n));
}
END_TEST

TCase *stateset_test_case(void)
{
    TCase *tc = tcase_create("stateset");

    tcase_add_checked_fixture(tc, bbs_test_setup, bbs_test_teardown);
    tcase_add_test(tc, default_route_set_is_the_documented_one);
    tcase_add_test(tc,
                 names_are_upper_cased_deduplicated_and_matched_in_any_case);
    tcase_add_test(tc, sets_are_the_same_whatever_the_order);
    tcase_add_test(tc, an_empty_list_is_refused);
    tcase_add_test(tc, a_name_with_other_characters_is_refused_and_named);
    tcase_add_test(tc, an_empty_or_overlong_name_is_refused);
    tcase_add_test(tc, sizes_parse_with_units_within_one_byte_and_one_mebibyte);
    tcase_add_test(tc, bad_sizes_are_refused);
    return tc;
}
