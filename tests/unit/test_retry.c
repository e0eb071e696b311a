/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * BBStatusRetry's rule, one row per probe run after a 5xx: what the probe
 * got, through the decision core as the retry hands it over, and whether
 * the member counts as leaving (the request goes elsewhere).
 */
#include <string.h>

#include "bbs_decide.h"
#include "bbs_retry.h"
#include "bbs_test.h"

static const struct {
    const char *name;
    bbs_transport_e transport;
    int http_status;
    const char *body;
    int leaving;
} rows[] = {
    {"a node that says it is stopping is leaving", BBS_TX_OK, 503,
     "{\"state\":\"STOPPING\"}", 1},
    {"a node that says it is stopping with 200 is leaving", BBS_TX_OK, 200,
     "{\"state\":\"STOPPING\"}", 1},
    {"an error state is leaving", BBS_TX_OK, 500, "{\"state\":\"ERROR\"}", 1},
    {"a refused connection is leaving", BBS_TX_REFUSED, 0, NULL, 1},
    {"a running node's 5xx is its own answer", BBS_TX_OK, 200,
     "{\"state\":\"RUNNING\"}", 0},
    {"a starting node stays: its page is the answer", BBS_TX_OK, 503,
     "{\"state\":\"STARTING\"}", 0},
    {"maintenance stays: its page is the answer", BBS_TX_OK, 503,
     "{\"state\":\"MAINTENANCE\"}", 0},
    {"a 5xx without a state proves nothing", BBS_TX_OK, 500,
     "<html>Internal Server Error</html>", 0},
    {"a timeout proves nothing", BBS_TX_TIMEOUT, 0, NULL, 0},
    {"a reset proves nothing", BBS_TX_RESET, 0, NULL, 0},
    {"an empty reply proves nothing", BBS_TX_EMPTY, 0, NULL, 0},
    {"a TLS failure proves nothing", BBS_TX_TLS, 0, NULL, 0},
    {"a name that does not resolve proves nothing", BBS_TX_DNS, 0, NULL, 0},
    {"garbage instead of HTTP proves nothing", BBS_TX_PROTOCOL, 0, NULL, 0},
    {"a body cut short proves nothing", BBS_TX_BODY, 200, NULL, 0},
    {"any other failure proves nothing", BBS_TX_OTHER, 0, NULL, 0},
};

START_TEST(a_probe_after_a_5xx_says_whether_the_member_is_leaving)
{
    bbs_rules_t rules;
    bbs_answer_t a;
    bbs_result_t res;

    bbs_rules_default(&rules);
    memset(&a, 0, sizeof(a));
    a.transport = rows[_i].transport;
    a.http_status = rows[_i].http_status;
    a.content_type = "application/json";
    a.body = rows[_i].body;
    a.body_len = rows[_i].body ? strlen(rows[_i].body) : 0;
    bbs_decide(&rules, &a, &res);
    ck_assert_msg(bbs_retry_leaving(res.verdict, a.transport)
                      == rows[_i].leaving,
                  "%s (verdict %s: %s)", rows[_i].name,
                  bbs_verdict_name(res.verdict), res.reason);
}
END_TEST

TCase *retry_test_case(void)
{
    TCase *tc = tcase_create("retry");

    tcase_add_checked_fixture(tc, bbs_test_setup, bbs_test_teardown);
    tcase_add_loop_test(tc,
                        a_probe_after_a_5xx_says_whether_the_member_is_leaving,
                        0, (int)(sizeof(rows) / sizeof(rows[0])));
    return tc;
}
