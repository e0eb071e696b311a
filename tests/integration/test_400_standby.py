"""Graded routing: standby states, re-probes after failed requests, panic
mode and the fast check interval, against a real apache2 and simulated
Atlassian nodes.

Every test starts its own simulated nodes (tests/nodes/simnode.py) and its
own apache2 (tests/integration/httpd.py), then looks at the outcome through
the module's JSON diagnostics and through real requests sent through the
proxy (the ``X-Node`` header names the node that answered).

Timing tests drive requests from a pool of threads, each on its own
keep-alive connection, and compare times taken on the simulator's clock
(``nodes.requests``, ``status_times``) with times taken here (both
``time.time()`` on the same machine).  Measured values are printed (run
with ``-s`` to see them) and named in every assertion message.
"""

import collections
import re
import time

import pytest

from httpd import MPMS, SHAPES, free_port, wait_until
from bbs import (FAILING_RUNNING, OUT_UNDER_LOAD_LOGS, REFUSED_LOGS, Load,
                 brief, config, diag, is_, ms, murl, params, traffic,
                 wait_members)


STATUS_404 = {"status": 404, "content_type": "text/plain;charset=UTF-8",
              "body": "Not Found\n"}


# --- 1. standby members get traffic only when nobody better is there ------

@pytest.mark.parametrize("mpm", MPMS)
@pytest.mark.parametrize("shape", SHAPES)
def test_standby_member_gets_no_traffic_while_running_members_exist(env, shape, mpm):
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("b", "bitbucket", "RUNNING"),
                         ("c", "bitbucket", "STARTING")])
    a, b, c = (murl(nodes, n) for n in "abc")
    h = make()
    p = params("300ms")
    h.start(config([(a, p), (b, p), (c, p)]))

    recs = wait_members(h, {a: is_("route", "RUNNING"),
                            b: is_("route", "RUNNING"),
                            c: is_("standby", "STARTING")}, 8,
                        "a, b route and c standby")
    m = recs[c]
    assert m["in_rotation"] is False, brief(m)
    assert "Stby" in m["flags"] and "HcFl" not in m["flags"], brief(m)
    assert m["http_status"] == 503, brief(m)   # Bitbucket's STARTING
    assert "BBStatusStandby" in m["reason"], brief(m)
    for u in (a, b):
        assert recs[u]["in_rotation"] is True, brief(recs[u])
        assert "Stby" not in recs[u]["flags"], brief(recs[u])

    seen, answers = traffic(h, 60)
    assert seen["c"] == 0, answers
    assert seen["a"] > 0 and seen["b"] > 0, seen
    assert seen["a"] + seen["b"] == 60, seen
    assert all(s == 200 for s, _ in answers), answers
    assert nodes.requests("c") == []
    m = diag(h)[c]
    assert m["decision"] == "standby" and m["in_rotation"] is False, brief(m)

    # the whole cluster in standby states: every member takes traffic
    nodes.set("a", state="MAINTENANCE")
    nodes.set("b", state="STARTING")
    recs = wait_members(h, {a: is_("standby", "MAINTENANCE"),
                            b: is_("standby", "STARTING"),
                            c: is_("standby", "STARTING")}, 8,
                        "all three standby")
    for u, m in recs.items():
        assert m["in_rotation"] is True, brief(m)
        assert "Stby" in m["flags"] and "HcFl" not in m["flags"], brief(m)

    seen, answers = traffic(h, 60)
    print(f"\nall-standby traffic over 60 requests: {dict(seen)}")
    assert seen[None] == 0, answers          # every answer from a node
    assert all(seen[n] > 0 for n in "abc"), seen
    # STARTING and MAINTENANCE nodes answer user pages with 503
    assert all(s == 503 for s, _ in answers), answers

    # a member back in RUNNING loses the module's standby flag and takes
    # all the traffic again
    nodes.set("b", state="RUNNING")
    recs = wait_members(h, {b: is_("route", "RUNNING")}, 8, "b route")
    assert "Stby" not in recs[b]["flags"], brief(recs[b])
    wait_members(h, {a: lambda m: m["in_rotation"] is False,
                     c: lambda m: m["in_rotation"] is False}, 3,
                 "a and c out of rotation again")
    seen, answers = traffic(h, 20)
    assert seen == {"b": 20}, answers


# --- 2. the backup client with the whole cluster in maintenance -----------

TOKEN = "secret-token-400"


@pytest.mark.parametrize("shape", SHAPES)
def test_backup_client_whole_cluster_in_maintenance(env, shape):
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("b", "bitbucket", "RUNNING"),
                         ("c", "jira", "RUNNING")])
    urls = {n: murl(nodes, n) for n in "abc"}
    h = make()
    p = params("300ms")
    h.start(config([(u, p) for u in urls.values()]))
    wait_members(h, {u: is_("route", "RUNNING") for u in urls.values()}, 8,
                 "all route")

    headers = {"X-Atlassian-Maintenance-Token": TOKEN}
    bad = []

    def poll(tag, i):
        status, hdrs, body = h.get(f"/mvc/maintenance?{tag}{i}",
                                   headers=headers)
        node = hdrs.get("x-node")
        if status != 200 or node is None or not body.startswith(b"node="):
            bad.append((tag, i, status, node, body[:200]))
        return node

    # the backup starts: the nodes go into maintenance one after the other
    # while the client polls
    for i, n in enumerate("abc"):
        nodes.set(n, state="MAINTENANCE")
        for k in range(5):
            poll(f"switch{i}-", k)
    wait_members(h, {u: is_("standby", "MAINTENANCE")
                     for u in urls.values()}, 8, "all standby")

    seen = collections.Counter(poll("poll", i) for i in range(50))
    print(f"\nmaintenance polls by node: {dict(seen)}")
    assert not bad, bad
    assert sum(seen.values()) == 50 and set(seen) <= set("abc"), seen
    answered = [e for n in "abc" for e in nodes.requests(n)
                if e[1] == "/mvc/maintenance"]
    assert len(answered) == 65, len(answered)
    assert all(e[2] == 200 for e in answered), answered

    recs = diag(h)
    for u in urls.values():
        m = recs[u]
        assert m["decision"] == "standby" and m["in_rotation"] is True, \
            brief(m)
        assert "HcFl" not in m["flags"], brief(m)
    # user pages answer 503, from the nodes, not from the proxy
    s, hdrs, _ = h.get("/projects")
    assert s == 503 and hdrs.get("x-node") in set("abc"), (s, hdrs)
    assert TOKEN not in h.error_log()


# --- 3. an administrator's hot standby is never touched --------------------

def test_admin_hot_standby_is_kept(env):
    start_nodes, make = env
    nodes = start_nodes([("r", "bitbucket", "RUNNING"),
                         ("s", "bitbucket", "RUNNING")])
    r, s = murl(nodes, "r"), murl(nodes, "s")
    h = make()
    p = params("200ms")
    h.start(config([(r, p), (s, p + " status=+H")]))

    seen_flags = []

    def step(state, decisions):
        before = diag(h)[s].get("checks") or 0
        nodes.set("s", state=state)
        m = wait_members(
            h, {s: lambda m: m.get("state") == state
                and m.get("decision") in decisions
                and (m.get("checks") or 0) >= before + 2},
            8, f"s reported {state}")[s]
        seen_flags.append((state, m["flags"], m["decision"]))
        assert "Stby" in m["flags"], (state, brief(m))
        return m

    m = step("RUNNING", {"route"})
    assert "HcFl" not in m["flags"] and m["in_rotation"] is False, brief(m)
    m = step("MAINTENANCE", {"route", "standby"})
    assert "HcFl" not in m["flags"] and m["in_rotation"] is False, brief(m)
    m = step("RUNNING", {"route"})
    assert "HcFl" not in m["flags"], brief(m)
    m = step("STOPPING", {"block"})
    assert "HcFl" in m["flags"] and m["in_rotation"] is False, brief(m)
    m = step("RUNNING", {"route"})
    assert "HcFl" not in m["flags"] and m["in_rotation"] is False, brief(m)
    print(f"\nflags of the admin's standby member: {seen_flags}")

    # still the administrator's hot standby: no traffic while r runs ...
    seen, answers = traffic(h, 20)
    assert seen == {"r": 20}, answers
    # ... and the whole traffic once r goes away
    nodes.set("r", state="STOPPING")
    recs = wait_members(h, {r: is_("block", "STOPPING"),
                            s: lambda m: m["in_rotation"] is True}, 8,
                        "r blocked, s in rotation")
    assert "Stby" in recs[s]["flags"], brief(recs[s])
    seen, answers = traffic(h, 20)
    assert seen == {"s": 20}, answers
    assert "Stby" in diag(h)[s]["flags"]


# --- 4. a node going away under load is out after one re-probe ------------

# a request that chose a just before the re-probe set HcFl finds it
# unusable when it asks for a connection (AH00940) or once connected
# (AH01114), and the balancer sends it to b: the clients' answers below
# show that no request was lost to it
@pytest.mark.allow_log(*OUT_UNDER_LOAD_LOGS)
@pytest.mark.parametrize("mpm", MPMS)
@pytest.mark.parametrize("shape", SHAPES)
def test_stopping_node_under_load_out_after_reprobe(env, shape, mpm):
    start_nodes, make = env
    interval_ms = 10000
    # a's first check comes at once, its next one 5..10 s later
    port = free_port()
    nodes = start_nodes([("a", "bitbucket", "RUNNING", port),
                         ("b", "bitbucket", "RUNNING")])
    a, b = murl(nodes, "a"), murl(nodes, "b")
    h = make()
    p = params("10")
    # clients must see a's 503s here: this measures the early probe alone
    # (test_420_retry covers what BBStatusRetry makes of them)
    h.start(config([(a, p), (b, p)], section="BBStatusRetry off"))
    m0 = wait_members(h, {a: is_("route", "RUNNING")}, 6,
                      "a's first check")[a]
    assert m0["checks"] == 1, brief(m0)

    load = Load(h.port, path="/app/load", threads=6, rate=200).start()
    out = {}
    try:
        time.sleep(0.5)
        t_flip = time.time()
        nodes.set("a", state="STOPPING")

        def blocked():
            m = diag(h)[a]
            if is_("block", "STOPPING")(m):
                out.setdefault("m", m)
                out.setdefault("t", time.time())
            return out
        # well before a's next scheduled check (~10 s after its first)
        try:
            wait_until(blocked, 3.0, interval=0.03, what="a blocked")
        except AssertionError:
            pass
        time.sleep(0.7)
    finally:
        load.stop()

    rate = load.rate()
    reqs = nodes.requests("a")
    failed = [e for e in reqs if e[2] == 503 and e[0] >= t_flip - 0.05]
    assert failed, f"a never answered 503 after the flip: {reqs[-10:]}"
    first_503 = failed[0][0]
    last_answer = max(e[0] for e in reqs)
    took = last_answer - first_503
    # the same seen from the client: first 503 with X-Node a, last a
    mine = [r for r in load.results if r[3] == "a"]
    c_first = min(r[1] for r in mine if r[2] == 503)
    c_last = max(r[1] for r in mine)
    m = out.get("m") or diag(h)[a]
    print(f"\nload {rate:.0f} req/s ({len(load.results)} requests, errors "
          f"{dict(load.errors)}); a: first 503 -> last request "
          f"{ms(took)} ms (node clock), {ms(c_last - c_first)} ms (client); "
          f"503s from a: {len(failed)}; flip -> seen out: "
          f"{ms(out['t'] - t_flip) if out else 'never'} ms; a: {brief(m)}")
    assert rate >= 50, f"load too low to measure: {rate:.0f} req/s"
    assert not load.errors, load.errors
    # every answer came from a node: a's 503s, everything else 200
    assert all(r[3] in ("a", "b") and (r[2] == 200 or r[3] == "a")
               for r in load.results), \
        collections.Counter((r[2], r[3]) for r in load.results)
    # 100 ms tick + one probe; generous for a shared 2-core machine
    assert took < 1.0, (f"a answered for {ms(took)} ms after its first 503 "
                        f"({len(failed)} failed requests; a {brief(m)})")
    assert out, f"a not blocked within 3 s: {brief(m)}"
    # caught by an out-of-turn probe, not by the next scheduled check
    assert m["checks"] >= 2, brief(m)
    assert m["interval_ms"] < interval_ms * 0.8, brief(m)
    after = load.since(out["t"] + 0.1)
    assert after and all(r[3] == "b" and r[2] == 200 for r in after), \
        collections.Counter((r[2], r[3]) for r in after)


# --- 5. re-probes are rate limited -----------------------------------------

def test_reprobes_limited_under_failing_load(env):
    start_nodes, make = env
    # the one scheduled check early in a 30 s interval: no other scheduled
    # check falls into the measurement
    port = free_port()
    nodes = start_nodes([("a", "bitbucket", "RUNNING", port)])
    a = murl(nodes, "a")
    # every page fails with 503, /status included, but /status says RUNNING
    nodes.set("a", mode="custom", scope="all", custom=FAILING_RUNNING)
    h = make(threads_per_child=32)
    h.start(config([(a, params("30"))]))
    m = wait_members(h, {a: is_("route", "RUNNING")}, 5, "a's first check")[a]
    assert m["http_status"] == 503, brief(m)
    s, hdrs, _ = h.get("/app/x")
    assert s == 503 and hdrs.get("x-node") == "a", (s, hdrs)
    time.sleep(0.3)

    before = nodes.node("a")["counts"]["status"]
    # about 500 failing requests per second
    load = Load(h.port, path="/app/fail", threads=12, rate=500).start()
    try:
        time.sleep(3.0)
    finally:
        load.stop()
    rec = nodes.node("a")
    span = load.stopped - load.started
    probes = [t for t in rec["status_times"]
              if load.started <= t <= load.stopped + 0.15]
    gaps = [round(y - x, 3) for x, y in zip(probes, probes[1:])]
    rate = load.rate()
    statuses = collections.Counter((r[2], r[3]) for r in load.results)
    print(f"\nfailing load {rate:.0f} req/s for {span:.2f} s "
          f"({len(load.results)} requests, errors {dict(load.errors)}): "
          f"{len(probes)} probes, gaps {gaps}")
    assert statuses.keys() == {(503, "a")}, statuses
    assert not load.errors, load.errors
    assert rate >= 150, f"load too low: {rate:.0f} req/s"
    limit = span / 0.25 + 2
    assert len(probes) <= limit, (len(probes), limit, gaps)
    # the re-probes do happen: a 30 s hcinterval gives at most one
    assert len(probes) >= 4, (len(probes), gaps)
    assert rec["counts"]["status"] - before >= len(probes)
    m = diag(h)[a]
    assert m["decision"] == "route" and m["in_rotation"] is True, brief(m)


# --- 6. panic: when every check fails, the checks are wrong ----------------

@pytest.mark.allow_log(r"BBS0030")
def test_panic_keeps_balancer_in_service(env):
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("b", "bitbucket", "RUNNING"),
                         ("c", "jira", "RUNNING")])
    urls = {n: murl(nodes, n) for n in "abc"}
    for n in "abc":
        nodes.set(n, mode="custom", scope="status", custom=STATUS_404)
    h = make()
    p = params("300ms", passes=1, fails=2)
    h.start(config([(u, p) for u in urls.values()]))

    recs = wait_members(h, {u: is_("panic", checks=3)
                            for u in urls.values()}, 10, "all in panic")
    for m in recs.values():
        assert m["in_rotation"] is True, brief(m)
        assert "HcFl" not in m["flags"], brief(m)
        assert m["http_status"] == 404 and m["state"] is None, brief(m)
        assert "404" in m["reason"], brief(m)
    seen, answers = traffic(h, 30)
    print(f"\npanic traffic: {dict(seen)}")
    assert seen[None] == 0 and all(seen[n] > 0 for n in "abc"), answers
    assert all(s == 200 for s, _ in answers), answers

    # more failed checks in panic: still one warning only
    c0 = {u: m["checks"] for u, m in recs.items()}
    wait_members(h, {u: is_("panic", checks=c0[u] + 3)
                     for u in urls.values()}, 8, "more checks in panic")
    log = h.error_log()
    assert len(re.findall(r":warn\].*BBS0030", log)) == 1, \
        re.findall(r".*BBS0030.*", log)
    assert "BBS0031" not in log

    # one member answers again: panic is over, the others are out
    off = h.log_offset()
    nodes.set("a", mode="normal")
    recs = wait_members(h, {urls["a"]: is_("route", "RUNNING"),
                            urls["b"]: lambda m: m["decision"] == "block",
                            urls["c"]: lambda m: m["decision"] == "block"},
                        8, "a route, b and c block")
    assert recs[urls["a"]]["in_rotation"] is True, brief(recs[urls["a"]])
    for n in "bc":
        m = recs[urls[n]]
        assert "HcFl" in m["flags"] and m["in_rotation"] is False, brief(m)
    h.wait_log(r"\[bbstatus:notice\].*BBS0031: balancer://bb", 3, since=off)
    seen, answers = traffic(h, 20)
    assert seen == {"a": 20}, answers
    assert len(re.findall(r"BBS0030", h.error_log())) == 1


@pytest.mark.allow_log(r"AH01170")
def test_panic_off_takes_all_members_out(env):
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("b", "jira", "RUNNING")])
    urls = {n: murl(nodes, n) for n in "ab"}
    for n in "ab":
        nodes.set(n, mode="custom", scope="status", custom=STATUS_404)
    h = make()
    p = params("300ms", passes=1, fails=2)
    h.start(config([(u, p) for u in urls.values()], head="BBStatusPanic off"))
    recs = wait_members(h, {u: is_("block", checks=3)
                            for u in urls.values()}, 10, "all blocked")
    for m in recs.values():
        assert m["in_rotation"] is False, brief(m)
        assert "HcFl" in m["flags"], brief(m)
    seen, answers = traffic(h, 10)
    assert seen == {None: 10}, answers
    assert all(s == 503 for s, _ in answers), answers
    assert "BBS0030" not in h.error_log()
    assert nodes.requests("a") == [] and nodes.requests("b") == []


# --- 7. the fast interval while a member is changing ------------------------

def test_fast_interval_while_failing(env):
    start_nodes, make = env
    port = free_port()
    nodes = start_nodes([("f", "bitbucket", "RUNNING", port),
                         ("g", "bitbucket", "RUNNING")])
    f, g = murl(nodes, "f"), murl(nodes, "g")
    h = make()
    p = params("3", passes=3, fails=3)
    h.start(config([(f, p), (g, p)], head="BBStatusFastInterval 200ms"))
    # the second check comes 1.5..3 s after the first; from the third on
    # they are an interval apart
    wait_members(h, {f: is_("route", "RUNNING", checks=2)}, 8,
                 "f's second check")
    nodes.set("f", mode="garbage", scope="status")

    seen = {}           # checks -> first record seen with that count

    def poll():
        m = diag(h)[f]
        seen.setdefault(m.get("checks") or 0, m)
        fails = [x for x in seen.values() if (x.get("failures") or 0) >= 4]
        return fails

    try:
        wait_until(poll, 13, interval=0.03,
                   what="four failed checks of f")
    except AssertionError as e:
        got = {c: brief(m) for c, m in sorted(seen.items())}
        raise AssertionError(f"{e}\nseen: {got}") from None

    by_failures = {}
    for c in sorted(seen):
        by_failures.setdefault(seen[c].get("failures") or 0, seen[c])
    summary = {k: (m["checks"], m["interval_ms"], m["decision"], m["flags"])
               for k, m in sorted(by_failures.items())}
    print(f"\nfailed checks of f (failures: checks, interval_ms, decision, "
          f"flags): {summary}")
    assert all(k in by_failures for k in (1, 2, 3, 4)), summary
    f1, f2, f3, f4 = (by_failures[k] for k in (1, 2, 3, 4))
    assert f1["checks"] + 3 == f4["checks"], summary   # none missed
    # the first failure comes on the regular schedule
    assert f1["interval_ms"] > 2000, summary
    assert f1["decision"] == "route", summary
    # from then on, while fcount > 0: every 200 ms
    assert f2["interval_ms"] < 1000, summary
    assert f3["interval_ms"] < 1000, summary
    assert f3["decision"] == "block" and "HcFl" in f3["flags"], summary
    # out: back to the regular 3 s
    assert f4["interval_ms"] > 2000, summary
    assert "HcFl" in f4["flags"], summary
    assert diag(h)[g]["in_rotation"] is True


# --- 8. the last RUNNING member leaves: standby takes over at once ---------

@pytest.mark.allow_log(*REFUSED_LOGS)
@pytest.mark.parametrize("shape", SHAPES)
def test_standby_takes_over_when_last_running_member_leaves(env, shape):
    start_nodes, make = env
    nodes = start_nodes([("r", "bitbucket", "RUNNING"),
                         ("s", "bitbucket", "MAINTENANCE")])
    r, s = murl(nodes, "r"), murl(nodes, "s")
    h = make()
    p = params("2", passes=1, fails=1)
    h.start(config([(r, p), (s, p)]))
    wait_members(h, {r: is_("route", "RUNNING"),
                     s: is_("standby", "MAINTENANCE")}, 6,
                 "r route, s standby")
    m = diag(h)[s]
    assert m["in_rotation"] is False, brief(m)

    # /mvc/maintenance answers 200 on a RUNNING and a MAINTENANCE node
    load = Load(h.port, path="/mvc/maintenance", threads=4,
                rate=100).start()
    try:
        time.sleep(0.5)
        t_flip = time.time()
        nodes.set("r", state="STOPPED")
        recs = wait_members(h, {r: lambda m: "HcFl" in m["flags"]}, 6,
                            "r marked out")
        t_out = time.time()
        time.sleep(0.7)
    finally:
        load.stop()

    rate = load.rate()
    before = [x for x in load.results if x[0] < t_flip]
    assert before and all(x[3] == "r" for x in before), \
        collections.Counter(x[3] for x in before)
    after = sorted((x for x in load.results if x[1] >= t_flip),
                   key=lambda x: x[1])
    by_node = [x for x in after if x[3] is not None]
    first_s = next((x for x in by_node if x[3] == "s"), None)
    assert first_s, collections.Counter((x[2], x[3]) for x in after)
    # longest time without an answer from a node, from the flip on
    stamps = [t_flip] + [x[1] for x in by_node]
    gap = max(y - x for x, y in zip(stamps, stamps[1:]))
    no_node = [x for x in after if x[3] is None]
    late = [x for x in load.since(t_out + 0.1) if (x[2], x[3]) != (200, "s")]
    print(f"\nload {rate:.0f} req/s; flip -> first answer from s "
          f"{ms(first_s[1] - t_flip)} ms; flip -> r seen out "
          f"{ms(t_out - t_flip)} ms; longest gap {ms(gap)} ms; "
          f"{len(no_node)} requests answered by the proxy itself")
    assert rate >= 30, rate
    assert first_s[1] - t_flip < 1.0, ms(first_s[1] - t_flip)
    assert gap < 1.0, ms(gap)
    assert not late, late[:10]
    m = recs[s]
    assert m["decision"] == "standby", brief(m)
    m = diag(h)[s]
    assert m["in_rotation"] is True and "HcFl" not in m["flags"], brief(m)
