/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#include <stdlib.h>

#include <apr_general.h>

#include "bbs_test.h"

apr_pool_t *bbs_test_pool;
const char *bbs_test_cases_dir = "tests/unit/cases";

void bbs_test_setup(void)
{
    ck_assert_int_eq(apr_pool_create(&bbs_test_pool, NULL), APR_SUCCESS);
}

void bbs_test_teardown(void)
{
    apr_pool_destroy(bbs_test_pool);
    bbs_test_pool = NULL;
}

int main(int argc, char **argv)
{
    Suite *s = suite_create("bbstatus core");
    SRunner *sr;
    int failed;

    if (argc > 1) {
        bbs_test_cases_dir = argv[1];
    }
    apr_initialize();
    suite_add_tcase(s, decide_test_case());
    suite_add_tcase(s, stateset_test_case());
    suite_add_tcase(s, cases_test_case());
    suite_add_tcase(s, policy_test_case());
    suite_add_tcase(s, connect_test_case());
    suite_add_tcase(s, accept_test_case());
    suite_add_tcase(s, route_test_case());
    suite_add_tcase(s, head_test_case());
    suite_add_tcase(s, url_test_case());
    suite_add_tcase(s, warmup_test_case());
    suite_add_tcase(s, seqlock_test_case());
    suite_add_tcase(s, lease_test_case());
    suite_add_tcase(s, retry_test_case());

    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    apr_terminate();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
