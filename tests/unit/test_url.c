/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * Where a probe goes: the path of /status under a member's path, and the
 * host and port it names.
 */
#include "bbs_test.h"
#include "bbs_url.h"

static const struct {
    const char *name;
    const char *base, *hcuri, *path;
} path_rows[] = {
    {"a member at the root is probed at /status", "", "", "/status"},
    {"a member URL without a path", NULL, "", "/status"},
    {"a member at the root with a slash", "/", "", "/status"},
    {"the context path comes first", "/jira", "", "/jira/status"},
    {"its trailing slashes go", "/jira//", "", "/jira/status"},
    {"hcuri replaces status", "/jira/", "rest/api/status",
     "/jira/rest/api/status"},
    {"hcuri's leading slashes go", "/jira/", "//status", "/jira/status"},
    {"hcuri keeps its query", "", "/status?detail=1", "/status?detail=1"},
    {"a NULL hcuri is status", "/bb", NULL, "/bb/status"},
    {"an hcuri of slashes alone probes the member's path", "/bb", "/",
     "/bb/"},
};

START_TEST(probe_paths_are_joined)
{
    ck_assert_str_eq(bbs_url_probe_path(bbs_test_pool, path_rows[_i].base,
                                        path_rows[_i].hcuri),
                     path_rows[_i].path);
}
END_TEST

START_TEST(an_ipv6_address_is_bracketed_with_its_port)
{
    ck_assert_str_eq(bbs_url_authority(bbs_test_pool, "127.0.0.1", 8080),
                     "127.0.0.1:8080");
    ck_assert_str_eq(bbs_url_authority(bbs_test_pool, "node1.example", 443),
                     "node1.example:443");
    ck_assert_str_eq(bbs_url_authority(bbs_test_pool, "::1", 7990),
                     "[::1]:7990");
    ck_assert_str_eq(bbs_url_authority(bbs_test_pool, "fe80::1%eth0", 80),
                     "[fe80::1%eth0]:80");
}
END_TEST

TCase *url_test_case(void)
{
    TCase *tc = tcase_create("url");

    tcase_add_checked_fixture(tc, bbs_test_setup, bbs_test_teardown);
    tcase_add_loop_test(tc, probe_paths_are_joined, 0,
                        (int)(sizeof(path_rows) / sizeof(path_rows[0])));
    tcase_add_test(tc, an_ipv6_address_is_bracketed_with_its_port);
    return tc;
}
