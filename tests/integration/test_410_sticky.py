"""Sticky sessions and the module's standby, against a real apache2 and
simulated Atlassian nodes.

mod_proxy_balancer honours a session's route even when it names a hot
standby member. For members the module holds in standby (STARTING,
MAINTENANCE) that would keep users on a node that shows them a progress or
maintenance page while a RUNNING node is there; these tests send requests
carrying a route (cookie, ``;jsessionid=`` path parameter, query parameter)
through the proxy with each stock lbmethod and look at which node answered
(``X-Node``) and at what the diagnostics say (``in_rotation`` for requests
without a route, ``in_rotation_sticky`` for requests whose route names the
member).
"""

import collections
import json
import os
import re
import time

import pytest

from bbs import BB, Load, brief, config, is_, murl, params, wait_members
from httpd import SHAPES, version as httpd_version


LBMETHODS = ("byrequests", "bybusyness", "bytraffic")
# cookie ROUTEID, path or query parameter jsessionid, both "<id>.<route>"
STICKY = "stickysession=ROUTEID|jsessionid scolonpathdelim=On"
N = 10


# httpd 2.4.62 and 2.4.63 take no route from the query string (their PR
# 69443): there a query parameter is no sticky request at all
QUERY_ROUTES = not (2, 4, 62) <= httpd_version() < (2, 4, 64)


def sticky_requests(route):
    """(kind, path, headers) of requests whose route is ``route``."""
    kinds = (("cookie", "/app/c", {"Cookie": f"other=1; ROUTEID=.{route}"}),
             ("path", f"/app/p;jsessionid=abc.{route}", {}),
             ("query", f"/app/q?x=1&jsessionid=abc.{route}", {}))
    return kinds if QUERY_ROUTES else kinds[:2]


def answers(h, path, headers, n=N):
    """Counter of (X-Node, status) over n requests."""
    seen = collections.Counter()
    for _ in range(n):
        status, hdrs, _ = h.get(path, headers=headers)
        seen[(hdrs.get("x-node"), status)] += 1
    return seen


def sticky_answers(h, route):
    return {kind: answers(h, path, headers)
            for kind, path, headers in sticky_requests(route)}


def expect_sticky(h, route, node, status, why):
    got = sticky_answers(h, route)
    want = {kind: {(node, status): N} for kind in got}
    assert got == want, f"{why}: route {route} -> {got}"


def rotation(m):
    return m["in_rotation"], m["in_rotation_sticky"]


def sticky_balancer(members, lbmethod, extra=""):
    return config(members, section=f"ProxySet lbmethod={lbmethod} {STICKY} "
                                   f"{extra}")


# --- 1. a sticky request leaves a standby member while a better one is there

@pytest.mark.parametrize("lbmethod,mpm",
                         [(lb, "event") for lb in LBMETHODS]
                         + [("byrequests", "prefork"),
                            ("byrequests", "worker")])
def test_sticky_requests_follow_standby_and_block(env, lbmethod, mpm):
    start_nodes, make = env
    nodes = start_nodes([("n1", "bitbucket", "RUNNING"),
                         ("n2", "bitbucket", "STARTING")])
    u1, u2 = murl(nodes, "n1"), murl(nodes, "n2")
    p = params("300ms")
    h = make(extra_modules=(f"lbmethod_{lbmethod}",), mpm=mpm)
    h.start(sticky_balancer([(u1, p + " route=n1"), (u2, p + " route=n2")],
                            lbmethod))

    recs = wait_members(h, {u1: is_("route", "RUNNING"),
                            u2: is_("standby", "STARTING")}, 8,
                        "n1 route, n2 standby")
    assert rotation(recs[u1]) == (True, True), brief(recs[u1])
    assert rotation(recs[u2]) == (False, False), brief(recs[u2])
    expect_sticky(h, "n2", "n1", 200, "n2 STARTING beside a RUNNING n1")
    expect_sticky(h, "n1", "n1", 200, "n1 RUNNING")
    # what reached n1 is what the client sent: the path parameter and the
    # query are untouched
    paths = {path for _, path, _ in nodes.requests("n1")}
    assert "/app/p;jsessionid=abc.n2" in paths, sorted(paths)
    assert nodes.requests("n2") == []

    # nobody better: every request reaches the standby members, a sticky
    # one the member its route names
    nodes.set("n1", state="MAINTENANCE")
    recs = wait_members(h, {u1: is_("standby", "MAINTENANCE"),
                            u2: is_("standby", "STARTING")}, 8,
                        "both standby")
    for u in (u1, u2):
        assert rotation(recs[u]) == (True, True), brief(recs[u])
    expect_sticky(h, "n2", "n2", 503, "both in standby states")
    expect_sticky(h, "n1", "n1", 503, "both in standby states")
    # the lbmethod's share counts the sticky requests above, so which of
    # the two answers is its business; a node answers every one
    plain = answers(h, "/app/plain", {}, 20)
    assert plain[("n1", 503)] + plain[("n2", 503)] == 20, plain

    # a member the checks blocked is skipped by the balancer itself
    nodes.set("n1", state="RUNNING")
    nodes.set("n2", state="STOPPING")
    recs = wait_members(h, {u1: is_("route", "RUNNING"),
                            u2: is_("block", "STOPPING")}, 8,
                        "n1 route, n2 block")
    assert "HcFl" in recs[u2]["flags"], brief(recs[u2])
    assert rotation(recs[u2]) == (False, False), brief(recs[u2])
    expect_sticky(h, "n2", "n1", 200, "n2 blocked")

    # from block to standby: still no sticky request for n2
    nodes.set("n2", state="MAINTENANCE")
    recs = wait_members(h, {u2: is_("standby", "MAINTENANCE")}, 8,
                        "n2 standby")
    assert rotation(recs[u2]) == (False, False), brief(recs[u2])
    expect_sticky(h, "n2", "n1", 200, "n2 MAINTENANCE beside a RUNNING n1")

    # RUNNING again: the route is honoured as before
    nodes.set("n2", state="RUNNING")
    recs = wait_members(h, {u2: is_("route", "RUNNING")}, 8, "n2 route")
    assert rotation(recs[u2]) == (True, True), brief(recs[u2])
    expect_sticky(h, "n2", "n2", 200, "n2 RUNNING")


@pytest.mark.parametrize("shape", SHAPES)
def test_sticky_requests_under_load(env, shape):
    """Many threads at once (event MPM): every sticky request for the
    standby member is answered by the running one."""
    start_nodes, make = env
    nodes = start_nodes([("n1", "bitbucket", "RUNNING"),
                         ("n2", "bitbucket", "STARTING")])
    u1, u2 = murl(nodes, "n1"), murl(nodes, "n2")
    p = params("300ms")
    h = make()
    h.start(sticky_balancer([(u1, p + " route=n1"), (u2, p + " route=n2")],
                            "byrequests"))
    wait_members(h, {u1: is_("route", "RUNNING"),
                     u2: is_("standby", "STARTING")}, 8,
                 "n1 route, n2 standby")
    load = Load(h.port, path="/app/l;jsessionid=abc.n2", threads=8).start()
    time.sleep(1.5)
    load.stop()
    seen = collections.Counter((node, status)
                               for _, _, status, node in load.results)
    print(f"\n{len(load.results)} sticky requests under load: {dict(seen)}")
    assert not load.errors, load.errors
    assert len(load.results) > 50, len(load.results)
    assert set(seen) == {("n1", 200)}, seen
    assert nodes.requests("n2") == []


# --- 2. the request reaches the other member as the client sent it ---------

ECHO = """
ProxyPass /echo !
LogFormat "%r|%{Cookie}i" echo
CustomLog logs/echo_log echo "expr=%{REQUEST_URI} =~ m#^/echo/#"
<Location /echo>
    Header always set X-Node echo
</Location>
# as in conf.d/bitbucket-balancer.conf.example
Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; path=/" env=BALANCER_ROUTE_CHANGED
"""


@pytest.mark.parametrize("shape", SHAPES)
def test_sticky_request_reaches_the_running_member_unchanged(env, shape):
    start_nodes, make = env
    nodes = start_nodes([("n2", "bitbucket", "STARTING")])
    u2 = murl(nodes, "n2")
    # the better member is this httpd itself, not checked by the module
    echo = "http://127.0.0.1:@PORT@/echo"
    h = make()
    os.makedirs(os.path.join(h.htdocs, "echo", "app"))
    for name in ("c", "q"):
        with open(os.path.join(h.htdocs, "echo", "app", name), "w") as f:
            f.write("echo\n")
    h.start(config([(echo, "route=n1"),
                    (u2, params("300ms") + " route=n2")], head=ECHO,
                   section="ProxySet stickysession=ROUTEID"))
    wait_members(h, {u2: is_("standby", "STARTING")}, 8, "n2 standby")

    cookie = "a=1; ROUTEID=xyz.n2; b=2"
    status, hdrs, _ = h.get("/app/c", headers={"Cookie": cookie})
    assert (hdrs.get("x-node"), status) == ("echo", 200), (status, hdrs)
    # the user is pinned to the member that answered
    assert hdrs.get("set-cookie") == "ROUTEID=.n1; path=/", hdrs
    status, hdrs, _ = h.get("/app/q?ROUTEID=.n2&y=2")
    assert (hdrs.get("x-node"), status) == ("echo", 200), (status, hdrs)
    assert hdrs.get("set-cookie") == "ROUTEID=.n1; path=/", hdrs
    # a request pinned to the running member changes nothing
    status, hdrs, _ = h.get("/app/c", headers={"Cookie": "ROUTEID=.n1"})
    assert (hdrs.get("x-node"), status) == ("echo", 200), (status, hdrs)
    assert "set-cookie" not in hdrs, hdrs
    with open(os.path.join(h.root, "logs", "echo_log")) as f:
        seen = f.read().splitlines()
    assert seen == [f"GET /echo/app/c HTTP/1.1|{cookie}",
                    "GET /echo/app/q?ROUTEID=.n2&y=2 HTTP/1.1|-",
                    "GET /echo/app/c HTTP/1.1|ROUTEID=.n1"], seen
    assert nodes.requests("n2") == []


# --- 3. nofailover and an administrator's hot standby keep their meaning ---

def running_starting_admin_standby(env, n3, section):
    """n1 RUNNING, n2 STARTING (routes n1, n2) and n3 RUNNING with
    ``n3`` added to its parameters (an administrator's hot standby), once
    checked. -> (h, (u1, u2, u3), records)"""
    start_nodes, make = env
    nodes = start_nodes([("n1", "bitbucket", "RUNNING"),
                         ("n2", "bitbucket", "STARTING"),
                         ("n3", "bitbucket", "RUNNING")])
    u1, u2, u3 = (murl(nodes, n) for n in ("n1", "n2", "n3"))
    p = params("300ms")
    h = make()
    h.start(config([(u1, p + " route=n1"), (u2, p + " route=n2"),
                    (u3, p + " " + n3)], section=section))
    recs = wait_members(h, {u1: is_("route", "RUNNING"),
                            u2: is_("standby", "STARTING"),
                            u3: is_("route", "RUNNING")}, 8,
                        "n1, n3 route, n2 standby")
    return h, (u1, u2, u3), recs


@pytest.mark.parametrize("shape", SHAPES)
def test_nofailover_and_admin_standby_keep_sticky_requests(env, shape):
    h, (u1, u2, u3), recs = running_starting_admin_standby(
        env, "route=n3 status=+H",
        "ProxySet stickysession=ROUTEID nofailover=On")
    # nofailover=On: a session never moves while its member can answer
    assert rotation(recs[u2]) == (False, True), brief(recs[u2])
    # an administrator's hot standby is the balancer's own: sticky
    # requests reach it
    assert rotation(recs[u3]) == (False, True), brief(recs[u3])
    if QUERY_ROUTES:
        assert answers(h, "/app/q?ROUTEID=.n2", {}) == {("n2", 503): N}
    assert answers(h, "/app/c", {"Cookie": "ROUTEID=.n2"}) == {("n2", 503): N}
    assert answers(h, "/app/c", {"Cookie": "ROUTEID=.n3"}) == {("n3", 200): N}
    assert answers(h, "/app/plain", {}) == {("n1", 200): N}


# --- 4. every output says the same ---------------------------------------

def test_sticky_rotation_in_every_output(env):
    h, (u1, u2, u3), recs = running_starting_admin_standby(
        env, "status=+H", "ProxySet stickysession=ROUTEID")
    assert rotation(recs[u1]) == (True, True), brief(recs[u1])
    assert rotation(recs[u2]) == (False, False), brief(recs[u2])
    # no route: no request can name it
    assert rotation(recs[u3]) == (False, None), brief(recs[u3])

    status, _, body = h.get("/bbstatus?format=prometheus")
    assert status == 200
    text = body.decode()
    for u, v in ((u1, 1), (u2, 0)):
        line = (f'bbstatus_member_in_rotation_sticky{{balancer="{BB}",'
                f'member="{u}",vhost="127.0.0.1"}} {v}')
        assert line in text.splitlines(), text
    assert (f'bbstatus_member_in_rotation_sticky{{balancer="{BB}",'
            f'member="{u3}",') not in text, text

    status, _, body = h.get("/server-status?auto")
    assert status == 200
    lines = {ln.split()[2]: ln for ln in body.decode().splitlines()
             if ln.startswith("BBStatusMember: ")}
    assert " in_rotation=1 in_rotation_sticky=1 " in lines[u1], lines
    assert " in_rotation=0 in_rotation_sticky=0 " in lines[u2], lines
    assert " in_rotation=0 in_rotation_sticky=- " in lines[u3], lines

    status, _, body = h.get("/bbstatus")
    assert status == 200
    page = body.decode()
    for u, word in ((u1, "yes"), (u2, "no")):
        assert re.search(rf'data-member="{re.escape(u)}".*?'
                         rf'<span class="u">sticky: {word}</span>', page,
                         re.S), page[:3000]
    doc = json.loads(h.get("/bbstatus?format=json")[2])
    assert doc["balancers"][0]["members"][1]["in_rotation_sticky"] is False
