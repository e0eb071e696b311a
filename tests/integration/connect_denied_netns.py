"""The inside of test_170_connect_denied.py: run by it, in a network
namespace where connect() to BBS_NETNS_PROHIBITED fails with EACCES (a
`prohibit` route), as SELinux makes it fail for httpd_t on RHEL. Not
collected by a plain pytest run (the file name does not start with test_);
given alone elsewhere, its test skips."""

import os

import pytest

from bbs import config, get_json, murl, params, traffic, wait_member

ENV = "BBS_NETNS_PROHIBITED"
SELINUX_REASON = "permission denied (SELinux? see README)"


def test_inner_denied_member(env):
    denied_ip = os.environ.get(ENV)
    if not denied_ip:
        pytest.skip("runs inside the network namespace of "
                    "test_170_connect_denied.py")
    start_nodes, make = env
    nodes = start_nodes([("r", "bitbucket", "RUNNING")])
    denied = f"http://{denied_ip}:7990"
    p = params("200ms")
    h = make()
    h.start(config([(denied, p), (murl(nodes, "r"), p)]))

    m = wait_member(h, denied, lambda m: (m.get("checks") or 0) >= 1,
                    10, "a check of the denied member")
    assert m["decision"] == "block" and m["in_rotation"] is False, m
    assert m["reason"] == f"probe failed: connecting: {SELINUX_REASON}", m
    assert m["http_status"] in (0, None), m
    wait_member(h, murl(nodes, "r"), lambda m: m["decision"] == "route", 10,
                "the RUNNING member routed")

    # the same words on the page and in server-status, escaped for each
    status, _, page = h.get("/bbstatus")
    assert status == 200
    assert SELINUX_REASON in page.decode(), page[:2000]
    status, _, auto = h.get("/server-status?auto")
    assert status == 200
    assert "permission%20denied%20(SELinux%3F%20see%20README)" \
        in auto.decode(), auto.decode()
    doc = get_json(h)
    assert doc["module"] == "mod_bbstatus"

    # and users only reach the member that can be reached
    seen, answers = traffic(h, 10)
    assert set(seen) == {"r"}, answers
