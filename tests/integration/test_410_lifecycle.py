"""The flags the module sets over a member's life: across graceful and
hard restarts, balancer-manager edits and requests mod_proxy failed over,
against a real apache2 and simulated Atlassian nodes.
"""

import re
import time

import pytest

from httpd import SHAPES, wait_until
from bbs import (REFUSED_LOGS, Load, brief, config, diag, is_, murl, params,
                 post_member, traffic, wait_members)


def _standby_pair(env, interval="1"):
    """r RUNNING and s STARTING, s in the module's standby."""
    start_nodes, make = env
    nodes = start_nodes([("r", "bitbucket", "RUNNING"),
                         ("s", "bitbucket", "STARTING")])
    r, s = murl(nodes, "r"), murl(nodes, "s")
    h = make()
    h.start(config([(r, params(interval)), (s, params(interval))]))
    m = wait_members(h, {r: is_("route", "RUNNING"),
                         s: is_("standby", "STARTING")}, 8,
                     "r route, s standby")[s]
    assert "Stby" in m["flags"] and m["in_rotation"] is False, brief(m)
    return nodes, h, r, s


def _running_stays_standby(nodes, h, r, s):
    """s goes RUNNING and keeps the administrator's Stby: r takes all."""
    before = diag(h)[s]["checks"]
    nodes.set("s", state="RUNNING")
    m = wait_members(h, {s: lambda m: m["decision"] == "route"
                         and m["checks"] >= before + 2}, 8,
                     "s route, twice")[s]
    assert "Stby" in m["flags"] and m["in_rotation"] is False, brief(m)
    seen, answers = traffic(h, 20)
    assert seen == {"r": 20}, answers


# --- 1. every restart re-derives the flags --------------------------------

@pytest.mark.parametrize("mpm", ["event", "worker", "prefork"])
@pytest.mark.parametrize("shape", SHAPES)
def test_standby_flag_survives_graceful_and_restart(env, shape, mpm):
    start_nodes, make = env
    # a long interval, the first checks made at once at start-up: after a
    # restart the flags must come back from the records, not from a check
    # that happens to run
    nodes = start_nodes([("r", "bitbucket", "RUNNING"),
                         ("s", "bitbucket", "STARTING"),
                         ("x", "bitbucket", "STOPPING")])
    r, s, x = (murl(nodes, n) for n in "rsx")
    # prefork: one connection per child; room for the harness's own
    h = make(mpm=mpm, **({"server_limit": 6, "start_servers": 3}
                         if mpm == "prefork" else {}))
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


def test_hot_standby_added_to_the_configuration_at_a_restart_is_kept(env):
    nodes, h, r, s = _standby_pair(env)
    # the administrator makes s a hot standby for good, while the
    # module's Stby is on it
    h.graceful(config([(r, params("1")), (s, params("1", extra="status=+H"))]))
    _running_stays_standby(nodes, h, r, s)


# --- 2. a request mod_proxy failed over still asks for a probe -------------

@pytest.mark.allow_log(*REFUSED_LOGS)
def test_member_put_in_error_on_failover_is_probed_at_once(env):
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("b", "bitbucket", "RUNNING")])
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


def test_lowered_hcinterval_reschedules_the_next_check(env):
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING")])
    a = murl(nodes, "a")
    h = make()
    h.start(config([(a, params("60"))]))
    m = wait_members(h, {a: is_("route", "RUNNING")}, 5, "a's first check")[a]
    assert m["checks"] == 1, brief(m)
    time.sleep(1.2)   # more than the new interval since the first check

    fields = post_member(h, a, {"w_hi": "1000"})
    t0 = time.monotonic()
    m = wait_members(h, {a: is_("route", "RUNNING", checks=3)}, 6,
                     "two checks at the new interval")[a]
    took = time.monotonic() - t0
    print(f"\nhcinterval 60 s -> 1 s ({fields['w_hi']}): third check "
          f"{took * 1000:.0f} ms after the edit; {brief(m)}")
    assert took < 3.0, (took, brief(m))
    assert 800 <= m["interval_ms"] <= 1600, brief(m)


# --- 4. flags the module set never outlive its control ---------------------

def test_switch_to_get_gives_back_the_modules_standby(env):
    nodes, h, r, s = _standby_pair(env)
    # what a browser sends: the form echoes Hot Standby On
    fields = post_member(h, s, {"w_hm": "GET", "w_hu": "/status"})
    assert fields.get("w_status_H") == "1", fields

    def given_back():
        m = diag(h)[s]
        return m if m["hcmethod"] == "GET" and "Stby" not in m["flags"] \
            else None
    m = wait_until(given_back, 3, interval=0.05,
                   what="s without the module's Stby")
    print(f"\ns after the switch to GET: {m['flags']}")

    # mod_proxy_hcheck's GET decides from now on
    nodes.set("s", state="RUNNING")

    def routed():
        m = diag(h)[s]
        return m if m["in_rotation"] and "HcFl" not in m["flags"] else None
    wait_until(routed, 8, interval=0.1, what="s in rotation under GET")
    seen, answers = traffic(h, 20)
    assert seen["s"] > 0 and seen["r"] > 0, answers
    assert all(st == 200 for st, _ in answers), answers


@pytest.mark.parametrize("shape", SHAPES)
def test_admin_hot_standby_given_in_balancer_manager_is_kept(env, shape):
    nodes, h, r, s = _standby_pair(env)
    off = h.log_offset()
    # the administrator confirms Hot Standby On and changes nothing else
    fields = post_member(h, s, {})
    assert fields.get("w_status_H") == "1", fields
    claimed = (r"\[bbstatus:notice\].*BBS0013: balancer://bb member "
               + re.escape(s))
    try:
        # the claim lands after the response: wait for it before the node
        # changes, so that the outcome does not depend on who is faster
        h.wait_log(claimed, 3, since=off)
    except AssertionError:
        pass    # asserted at the end, after what matters more

    _running_stays_standby(nodes, h, r, s)

    # still the administrator's: r leaves, s takes the traffic
    nodes.set("r", state="STOPPING")
    wait_members(h, {r: is_("block", "STOPPING"),
                     s: lambda m: m["in_rotation"] is True}, 8,
                 "r out, s in")
    seen, answers = traffic(h, 10)
    assert seen == {"s": 10}, answers
    assert "Stby" in diag(h)[s]["flags"]
    assert re.search(claimed, h.error_log_since(off)), "no BBS0013"


def test_admin_taking_the_modules_standby_off_is_kept(env):
    nodes, h, r, s = _standby_pair(env)
    post_member(h, s, {"w_status_H": "0"})
    before = diag(h)[s]["checks"]
    # checks and re-applications go on; the flag stays off while s is
    # STARTING
    m = wait_members(h, {s: lambda m: m["checks"] >= before + 2}, 8,
                     "two more checks of s")[s]
    assert "Stby" not in m["flags"] and m["in_rotation"] is True, brief(m)
    assert m["decision"] == "standby", brief(m)
    seen, answers = traffic(h, 20)
    assert seen["s"] > 0 and seen["r"] > 0, answers

    # once s has left its standby state, a new one gets the module's Stby
    nodes.set("s", state="RUNNING")
    wait_members(h, {s: is_("route", "RUNNING")}, 8, "s route")
    nodes.set("s", state="MAINTENANCE")
    m = wait_members(h, {s: is_("standby", "MAINTENANCE")}, 8,
                     "s standby again")[s]
    m = wait_members(h, {s: lambda m: "Stby" in m["flags"]}, 3,
                     "the module's Stby back")[s]
    assert m["in_rotation"] is False, brief(m)


@pytest.mark.parametrize("attempt", range(3))
def test_admin_claim_made_right_after_a_graceful_restart_is_kept(env,
                                                                  attempt):
    """The balancer-manager confirmation of Hot Standby, posted as soon as
    a graceful restart under load has brought the new generation up, while
    the old one's children (its checker among them) still finish: the
    claim stays the administrator's, also when s goes RUNNING. (A claim
    posted before the restart is a run-time edit, which a restart drops as
    mod_proxy drops balancer-manager edits without BalancerPersist.)"""
    nodes, h, r, s = _standby_pair(env)
    load = Load(h.port, threads=4, rate=100).start()
    try:
        time.sleep(0.2 * attempt)
        off = h.graceful()
        fields = wait_until(lambda: post_member(h, s, {}), 10,
                            interval=0.05, what="the claim posted",
                            ignore=(OSError, AssertionError))
        assert fields.get("w_status_H") == "1", fields
        h.wait_log(r"\[bbstatus:notice\].*BBS0013: balancer://bb member "
                   + re.escape(s), 5, since=off)
        _running_stays_standby(nodes, h, r, s)
    finally:
        load.stop()
