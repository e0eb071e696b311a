"""The flags the module sets over a member's life: across graceful and
hard restarts, balancer-manager edits and requests mod_proxy failed over,
against a real apache2 and simulated Atlassian nodes.

The scenarios reuse the fixtures and helpers of test_400_standby.py.
"""

import time
import urllib.parse

import pytest

from httpd import wait_until
from test_100_method import _edit_form
from test_400_standby import (  # noqa: F401 (fixtures)
    REFUSED_LOGS, brief, config, diag, env, is_, murl, params,
    port_first_checked, sim, traffic, wait_members)


# --- 1. every restart re-derives the flags --------------------------------

@pytest.mark.parametrize("mpm", ["event", "worker", "prefork"])
def test_standby_flag_survives_graceful_and_restart(env, mpm):
    start_nodes, make = env
    # a long interval, with both first checks early in it: after a
    # restart the flags must come back from the records, not from a check
    # that happens to run
    ports = [port_first_checked(100, 1500, 30000) for _ in range(3)]
    nodes = start_nodes([("r", "bitbucket", "RUNNING", ports[0]),
                         ("s", "bitbucket", "STARTING", ports[1]),
                         ("x", "bitbucket", "STOPPING", ports[2])])
    r, s, x = (murl(nodes, n) for n in "rsx")
    h = make(mpm=mpm)
    h.start(config([(u, params("30")) for u in (r, s, x)]))
    wait_members(h, {r: is_("route", "RUNNING"),
                     s: is_("standby", "STARTING"),
                     x: is_("block", "STOPPING")}, 8,
                 "r route, s standby, x block")

    for kind in ("graceful", "restart"):
        checks = {u: m["checks"] for u, m in diag(h).items()}
        getattr(h, kind)()
        # at once: the new generation's children start with the flags
        seen, answers = traffic(h, 20)
        recs = diag(h)
        print(f"\n{mpm} {kind}: traffic {dict(seen)}; s {brief(recs[s])}")
        assert seen == {"r": 20}, (kind, answers, brief(recs[s]))
        assert nodes.requests("s") == [] and nodes.requests("x") == [], kind
        m = recs[s]
        assert m["decision"] == "standby" and m["in_rotation"] is False, \
            (kind, brief(m))
        assert "Stby" in m["flags"], (kind, brief(m))
        m = recs[x]
        assert m["decision"] == "block" and m["in_rotation"] is False, \
            (kind, brief(m))
        assert "HcFl" in m["flags"], (kind, brief(m))
        m = recs[r]
        assert m["decision"] == "route" and m["in_rotation"] is True, \
            (kind, brief(m))
        # the flags came from the records: no check ran in between
        assert all(recs[u]["checks"] == checks[u] for u in (r, s, x)), \
            (kind, {u: brief(m) for u, m in recs.items()})


# --- 2. a request mod_proxy failed over still asks for a probe -------------

@pytest.mark.allow_log(*REFUSED_LOGS)
def test_member_put_in_error_on_failover_is_probed_at_once(env):
    start_nodes, make = env
    ports = [port_first_checked(100, 1500, 10000) for _ in range(2)]
    nodes = start_nodes([("a", "bitbucket", "RUNNING", ports[0]),
                         ("b", "bitbucket", "RUNNING", ports[1])])
    a, b = murl(nodes, "a"), murl(nodes, "b")
    h = make()
    h.start(config([(a, params("10")), (b, params("10"))]))
    recs = wait_members(h, {a: is_("route", "RUNNING"),
                            b: is_("route", "RUNNING")}, 5, "first checks")
    before = recs[a]["checks"]

    nodes.set("a", mode="refuse")
    # byrequests takes turns: one of two requests goes to a, is refused,
    # and mod_proxy fails it over to b; post_request only sees b
    t0 = time.monotonic()
    seen, answers = traffic(h, 2)
    assert seen == {"b": 2}, answers
    assert all(s == 200 for s, _ in answers), answers

    def probed():
        m = diag(h)[a]
        return m if (m.get("checks") or 0) > before else None
    m = wait_until(probed, 5, interval=0.02, what="a probed after the "
                   "failed-over request")
    took = time.monotonic() - t0
    print(f"\nrefused member probed {took * 1000:.0f} ms after the "
          f"failed-over requests: {brief(m)}")
    assert took < 1.0, (took, brief(m))
    m = wait_members(h, {a: lambda m: m["decision"] == "block"}, 2,
                     "a out")[a]
    assert "HcFl" in m["flags"] and m["in_rotation"] is False, brief(m)


# --- 3. balancer-manager edits apply at once -------------------------------

def _post_member(h, worker_url, changes):
    """Submits the balancer-manager form of a member as a browser would,
    with ``changes`` ({field: value}) made to it; returns the fields."""
    form = _edit_form(h, worker_url)
    fields = dict(form.fields)
    fields.update(changes)
    body = urllib.parse.urlencode(fields)
    status, _, resp = h.get(form.action, method="POST", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Referer": h.url("/balancer-manager")})
    assert status in (200, 302, 303), resp
    return fields


def test_lowered_hcinterval_reschedules_the_next_check(env):
    start_nodes, make = env
    port = port_first_checked(100, 1500, 60000)
    nodes = start_nodes([("a", "bitbucket", "RUNNING", port)])
    a = murl(nodes, "a")
    h = make()
    h.start(config([(a, params("60"))]))
    m = wait_members(h, {a: is_("route", "RUNNING")}, 5, "a's first check")[a]
    assert m["checks"] == 1, brief(m)
    time.sleep(1.2)   # more than the new interval since the first check

    fields = _post_member(h, a, {"w_hi": "1000"})
    t0 = time.monotonic()
    m = wait_members(h, {a: is_("route", "RUNNING", checks=3)}, 6,
                     "two checks at the new interval")[a]
    took = time.monotonic() - t0
    print(f"\nhcinterval 60 s -> 1 s ({fields['w_hi']}): third check "
          f"{took * 1000:.0f} ms after the edit; {brief(m)}")
    assert took < 3.0, (took, brief(m))
    assert 800 <= m["interval_ms"] <= 1600, brief(m)
