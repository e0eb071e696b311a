/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include <errno.h>
#include <string.h>

#include <apr_strings.h>

#include "bbs_connect.h"
#include "bbs_decide.h"
#include "bbs_test.h"

START_TEST(eacces_names_selinux_and_the_readme)
{
    char buf[120];

    ck_assert_str_eq(bbs_connect_cause(APR_EACCES, buf, sizeof(buf)),
                     "permission denied (SELinux? see README)");
    /* what apr_socket_connect() returns is the errno itself */
    ck_assert_str_eq(bbs_connect_cause(APR_FROM_OS_ERROR(EACCES), buf,
                                       sizeof(buf)),
                     "permission denied (SELinux? see README)");
}
END_TEST

START_TEST(other_errors_keep_the_systems_words)
{
    char buf[120], want[120];
    const int errs[] = {EHOSTUNREACH, ENETUNREACH, EPERM, EADDRNOTAVAIL};
    apr_size_t i;

    for (i = 0; i < sizeof(errs) / sizeof(errs[0]); ++i) {
        apr_status_t rv = APR_FROM_OS_ERROR(errs[i]);

        apr_strerror(rv, want, sizeof(want));
        ck_assert_str_eq(bbs_connect_cause(rv, buf, sizeof(buf)), want);
        ck_assert_ptr_null(strstr(buf, "SELinux"));
    }
}
END_TEST

START_TEST(no_buffer_still_gives_words)
{
    ck_assert_str_eq(bbs_connect_cause(APR_FROM_OS_ERROR(EHOSTUNREACH),
                                       NULL, 0), "connect failed");
    ck_assert_str_eq(bbs_connect_cause(APR_EACCES, NULL, 0),
                     "permission denied (SELinux? see README)");
}
END_TEST

/* The reason an operator reads, through the decision core as the probe
 * hands it over: a failed check that says where to look. */
START_TEST(the_reason_of_a_denied_connect_fits_and_says_selinux)
{
    char buf[120];
    bbs_answer_t a;
    bbs_rules_t rules;
    bbs_result_t res;

    bbs_rules_default(&rules);
    memset(&a, 0, sizeof(a));
    a.transport = BBS_TX_OTHER;
    a.detail = apr_psprintf(bbs_test_pool, "connecting: %s",
                            bbs_connect_cause(APR_EACCES, buf, sizeof(buf)));
    bbs_decide(&rules, &a, &res);
    ck_assert_int_eq(res.verdict, BBS_FAIL);
    ck_assert_str_eq(res.reason, "probe failed: connecting: permission "
                                 "denied (SELinux? see README)");
}
END_TEST

TCase *connect_test_case(void)
{
    TCase *tc = tcase_create("connect");

    tcase_add_checked_fixture(tc, bbs_test_setup, bbs_test_teardown);
    tcase_add_test(tc, eacces_names_selinux_and_the_readme);
    tcase_add_test(tc, other_errors_keep_the_systems_words);
    tcase_add_test(tc, no_buffer_still_gives_words);
    tcase_add_test(tc, the_reason_of_a_denied_connect_fits_and_says_selinux);
    return tc;
}
