/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
#ifndef BBS_TEST_H
#define BBS_TEST_H

#include <apr_pools.h>
#include <check.h>

/* A fresh pool for every test, destroyed after it (checked fixture). */
extern apr_pool_t *bbs_test_pool;
void bbs_test_setup(void);
void bbs_test_teardown(void);

/* Where the data-driven cases live (argv[1] of the runner). */
extern const char *bbs_test_cases_dir;

TCase *decide_test_case(void);
TCase *stateset_test_case(void);
TCase *cases_test_case(void);
TCase *policy_test_case(void);
TCase *connect_test_case(void);
TCase *accept_test_case(void);
TCase *route_test_case(void);
TCase *head_test_case(void);
TCase *url_test_case(void);
TCase *warmup_test_case(void);
TCase *seqlock_test_case(void);
TCase *lease_test_case(void);
TCase *retry_test_case(void);

#endif
