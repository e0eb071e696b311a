/* Copyright 2026 the mod_bbstatus authors
 * Licensed under the Apache License, Version 2.0; see LICENSE.
 */
/*
 * The route of a session, one row per request: where it is found (URL
 * parameter, query, cookie) and what of the value is the route, as
 * mod_proxy_balancer reads it. Rows use stickysession=JSESSIONID|jsessionid
 * and the default separator '.' unless they say otherwise.
 */
#include <string.h>

#include "bbs_route.h"
#include "bbs_test.h"

#define COOKIE "JSESSIONID"
#define PARAM "jsessionid"

static const struct {
    const char *name;
    const char *url, *query, *cookie;
    int scolon;
    char sep;
    const char *route; /* NULL: none */
    const char *sticky;
} rows[] = {
    /* cookies */
    {"the route follows the separator in the cookie",
     "/app", NULL, COOKIE "=abc.node1", 0, '.', "node1", COOKIE},
    {"a cookie among others separated by semicolons",
     "/app", NULL, "a=1; " COOKIE "=abc.node2; b=2", 0, '.', "node2", COOKIE},
    {"a cookie among others separated by commas",
     "/app", NULL, "a=1," COOKIE "=abc.node3,b=2", 0, '.', "node3", COOKIE},
    {"a cookie whose name ends in the name is another cookie",
     "/app", NULL, "X" COOKIE "=abc.n1; " COOKIE "=abc.n2", 0, '.', "n2",
     COOKIE},
    {"only a cookie whose name ends in the name is no route",
     "/app", NULL, "X" COOKIE "=abc.n1", 0, '.', NULL, COOKIE},
    {"quotes stay part of the value, as the balancer keeps them",
     "/app", NULL, COOKIE "=\"abc.node1\"", 0, '.', "node1\"", COOKIE},
    {"spaces before the equals sign are skipped",
     "/app", NULL, COOKIE " =abc.n1", 0, '.', "n1", COOKIE},
    {"the search goes on after what was looked at",
     "/app", NULL, COOKIE " " COOKIE "=abc.n1", 0, '.', NULL, COOKIE},
    {"an empty cookie has no route",
     "/app", NULL, COOKIE "=; x=1", 0, '.', NULL, COOKIE},
    {"a cookie at the end with nothing after the equals sign",
     "/app", NULL, "x=1; " COOKIE "=", 0, '.', NULL, COOKIE},
    {"no cookie header, no route", "/app", NULL, NULL, 0, '.', NULL, COOKIE},
    /* separators */
    {"a value without the separator has no route",
     "/app", NULL, COOKIE "=abc", 0, '.', NULL, COOKIE},
    {"the route is what follows the first separator",
     "/app", NULL, COOKIE "=abc.n1.n2", 0, '.', "n1.n2", COOKIE},
    {"a value ending in the separator has no route",
     "/app", NULL, COOKIE "=abc.", 0, '.', NULL, COOKIE},
    {"another separator",
     "/app", NULL, COOKIE "=abc_n1.x", 0, '_', "n1.x", COOKIE},
    {"no separator: the whole value is the route",
     "/app", NULL, COOKIE "=node1", 0, '\0', "node1", COOKIE},
    /* the URL's path parameter */
    {"a path parameter ends at a semicolon with scolonpathdelim",
     "/app;" PARAM "=abc.n1;x=1", NULL, NULL, 1, '.', "n1", PARAM},
    {"a path parameter runs on past a semicolon without it",
     "/app;" PARAM "=abc.n1;x=1", NULL, NULL, 0, '.', "n1;x=1", PARAM},
    {"a path parameter ends at the query",
     "/app;" PARAM "=abc.n1?x=1", NULL, NULL, 0, '.', "n1", PARAM},
    {"the URL wins over the cookie",
     "/app;" PARAM "=abc.n1", NULL, COOKIE "=abc.n2", 1, '.', "n1", PARAM},
    {"a URL value without the separator leaves no route, cookie or not",
     "/app;" PARAM "=abc", NULL, COOKIE "=abc.n2", 1, '.', NULL, PARAM},
    {"an empty URL parameter leaves the cookie",
     "/app?" PARAM "=", NULL, COOKIE "=abc.n2", 0, '.', "n2", COOKIE},
    {"leading delimiters are skipped, as the balancer's strtok does",
     "/app?" PARAM "=&abc.n1", NULL, NULL, 0, '.', "n1", PARAM},
    {"the name with no equals sign is passed by",
     "/" PARAM "/app?" PARAM "=abc.n1", NULL, NULL, 0, '.', "n1", PARAM},
    {"a longer name ending in the name counts, as in the balancer",
     "/app?x" PARAM "=abc.n1", NULL, NULL, 0, '.', "n1", PARAM},
    /* the query */
    {"the query is looked at after the URL",
     "/app", PARAM "=abc.n1&x=1", COOKIE "=abc.n2", 0, '.', "n1", PARAM},
    {"the URL wins over the query",
     "/app;" PARAM "=abc.n1", PARAM "=abc.n2", NULL, 1, '.', "n1", PARAM},
    {"a query without the parameter leaves the cookie",
     "/app", "x=1", COOKIE "=abc.n2", 0, '.', "n2", COOKIE},
    {"a query in the URL itself",
     "/app?x=1&" PARAM "=abc.n1", NULL, NULL, 0, '.', "n1", PARAM},
    {"nothing anywhere", "/app", "x=1", "a=1", 1, '.', NULL, NULL},
};

START_TEST(route_is_found_as_the_balancer_finds_it)
{
    bbs_route_in_t in;
    const char *route, *sticky = NULL;

    in.url = rows[_i].url;
    in.query = rows[_i].query;
    in.cookie = rows[_i].cookie;
    in.sticky = COOKIE;
    in.sticky_path = PARAM;
    in.scolonsep = rows[_i].scolon;
    in.separator = rows[_i].sep;
    route = bbs_route_find(bbs_test_pool, &in, &sticky);
    if (!rows[_i].route) {
        ck_assert_msg(route == NULL, "%s: got '%s'", rows[_i].name, route);
        return;
    }
    ck_assert_msg(route && !strcmp(route, rows[_i].route), "%s: got '%s'",
                  rows[_i].name, route ? route : "(none)");
    ck_assert_msg(sticky && !strcmp(sticky, rows[_i].sticky),
                  "%s: found under '%s'", rows[_i].name, sticky);
}
END_TEST

START_TEST(an_empty_name_finds_nothing)
{
    ck_assert_ptr_null(bbs_route_url_param(bbs_test_pool, "/a?=x.n1", "", 0));
    ck_assert_ptr_null(bbs_route_cookie(bbs_test_pool, "=x.n1", ""));
}
END_TEST

START_TEST(values_are_copies_cut_at_their_end)
{
    static const char url[] = "/app?" PARAM "=abc.n1&x=1";
    static const char cookie[] = COOKIE "=abc.n2; x=1";

    ck_assert_str_eq(bbs_route_url_param(bbs_test_pool, url, PARAM, 0),
                     "abc.n1");
    ck_assert_str_eq(bbs_route_cookie(bbs_test_pool, cookie, COOKIE),
                     "abc.n2");
    ck_assert_str_eq(url, "/app?" PARAM "=abc.n1&x=1");
}
END_TEST

TCase *route_test_case(void)
{
    TCase *tc = tcase_create("route");

    tcase_add_checked_fixture(tc, bbs_test_setup, bbs_test_teardown);
    tcase_add_loop_test(tc, route_is_found_as_the_balancer_finds_it, 0,
                        (int)(sizeof(rows) / sizeof(rows[0])));
    tcase_add_test(tc, an_empty_name_finds_nothing);
    tcase_add_test(tc, values_are_copies_cut_at_their_end);
    return tc;
}
