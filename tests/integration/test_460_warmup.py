"""First checks and the warm-up ramp (BBStatusWarmup), counted at the
simulated nodes under load through a real apache2.

- A member nobody has checked yet gets no request while a checked member
  is usable; right after a start requests wait for the first checks.
- A member switched to BBSTATUS in balancer-manager gets no request before
  its first check.
- A member back in rotation with BBStatusWarmup takes a share of the new
  requests without a route that grows over the ramp, for every stock
  lbmethod; users pinned to it go there at once; a graceful restart in the
  middle goes on where the ramp was; the diagnostics show it.
"""

import collections
import re
import threading
import time

import pytest

from bbs import (BB, OUT_UNDER_LOAD_LOGS, Load, brief, config, diag, is_,
                 member, murl, params, post_balancer, post_member,
                 wait_members)
from httpd import MPMS, free_port, wait_until


def node_hits(nodes, name, t0=0.0, t1=float("inf")):
    """Page requests node ``name`` logged in [t0, t1)."""
    return [e for e in nodes.requests(name) if t0 <= e[0] < t1]


class EarlyClient:
    """GETs that start before httpd listens: each thread connects as soon
    as the port accepts, so requests come from the first millisecond."""

    def __init__(self, port, n=200, threads=4):
        self.port, self.n, self.threads = port, n, threads
        self.answers = collections.Counter()
        self._lock = threading.Lock()
        self._pool = []

    def _run(self, k):
        import http.client
        end = time.monotonic() + 20
        sent = 0
        while sent < self.n // self.threads and time.monotonic() < end:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                  timeout=5)
                conn.request("GET", f"/app/early{k}-{sent}")
                resp = conn.getresponse()
                resp.read()
                conn.close()
            except OSError:
                time.sleep(0.001)   # not listening yet
                continue
            sent += 1
            with self._lock:
                self.answers[(resp.status, resp.getheader("X-Node"))] += 1

    def start(self):
        for k in range(self.threads):
            t = threading.Thread(target=self._run, args=(k,), daemon=True)
            t.start()
            self._pool.append(t)
        return self

    def join(self):
        for t in self._pool:
            t.join(30)
        return self.answers


# --- 1. no traffic before the first check ---------------------------------

@pytest.mark.parametrize("mpm", MPMS)
@pytest.mark.parametrize("state", ["STARTING", "STOPPING"])
def test_member_not_yet_checked_at_start_gets_no_request(env, state, mpm):
    """A RUNNING member and one that is STARTING or STOPPING, requests
    from the first millisecond: no client gets a 503 and the other node is
    reached at most once."""
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("x", "bitbucket", state)])
    a, x = murl(nodes, "a"), murl(nodes, "x")
    h = make()
    client = EarlyClient(h.port).start()
    h.start(config([(a, params("10")), (x, params("10"))]))
    answers = client.join()
    at_x = node_hits(nodes, "x")
    print(f"\n{mpm} {state}: client {dict(answers)}; x got {at_x}")
    assert sum(answers.values()) == 200, answers
    assert set(answers) == {(200, "a")}, answers
    assert len(at_x) <= 1, at_x


def test_member_switched_to_bbstatus_gets_no_request_before_its_check(env):
    """A member added in balancer-manager (growth=) and switched to
    BBSTATUS and enabled in one edit, under load: its node, STARTING, gets
    nothing, and is checked at once."""
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("n", "bitbucket", "STARTING")])
    a, n = murl(nodes, "a"), murl(nodes, "n")
    h = make()
    h.start(config([(a, params("10"))], section="ProxySet growth=2"))
    wait_members(h, {a: is_("route")}, 8, "a's first check")
    post_balancer(h, BB, {"b_nwrkr": n, "b_wyes": "1"})
    load = Load(h.port, threads=4, rate=100).start()
    try:
        time.sleep(0.3)
        t_edit = time.time()
        post_member(h, n, {"w_hm": "BBSTATUS", "w_status_D": "0",
                           "w_hi": "10000"})
        m = wait_until(lambda: (lambda r: r if (r.get("checks") or 0) >= 1
                                else None)(member(h, n)), 5,
                       what="n's first check")
        time.sleep(0.5)
    finally:
        load.stop()
    status_times = nodes.node("n")["status_times"]
    print(f"\nn: {brief(m)}; first probe "
          f"{(status_times[0] - t_edit) * 1000 if status_times else None}"
          f" ms after the edit; pages {node_hits(nodes, 'n')}")
    assert m["decision"] == "standby", brief(m)
    assert status_times and status_times[0] - t_edit < 1.0, status_times
    assert node_hits(nodes, "n") == []
    assert all(r[2] == 200 for r in load.results), \
        collections.Counter(r[2] for r in load.results)
    # the Stby the switch gave is the module's: it goes when n routes
    nodes.set("n", state="RUNNING")
    post_member(h, n, {"w_hi": "1000"})
    m = wait_until(lambda: (lambda r: r if r.get("decision") == "route"
                            and r.get("in_rotation") else None)(
        member(h, n)), 6, what="n in rotation once RUNNING")
    assert "Stby" not in m["flags"], brief(m)


# --- 2. the warm-up ramp ----------------------------------------------------

RAMP = 6     # seconds
FLOOR = 10   # percent


def back_from_restart(nodes, name, h):
    """Takes node ``name`` out (STOPPING) and back (RUNNING); returns when
    its decision is route again, with the time."""
    nodes.set(name, state="STOPPING")
    wait_members(h, {murl(nodes, name): is_("block")}, 8, f"{name} out")
    nodes.set(name, state="RUNNING")
    wait_members(h, {murl(nodes, name): is_("route")}, 8, f"{name} back")
    return time.time()


def shares(nodes, names, t0, t1, step=1.0):
    """[(second, {name: hits})] of the page requests in [t0, t1)."""
    out = []
    t = t0
    while t < t1:
        out.append((round(t - t0, 1),
                    {n: len(node_hits(nodes, n, t, t + step))
                     for n in names}))
        t += step
    return out


@pytest.mark.allow_log(*OUT_UNDER_LOAD_LOGS)
@pytest.mark.parametrize("lbmethod", ["byrequests", "bytraffic",
                                      "bybusyness"])
def test_warming_member_share_rises_over_the_ramp(env, lbmethod):
    start_nodes, make = env
    names = ("a", "b", "w")
    nodes = start_nodes([(n, "bitbucket", "RUNNING") for n in names])
    urls = [murl(nodes, n) for n in names]
    h = make(extra_modules=(f"lbmethod_{lbmethod}",)
             if lbmethod != "byrequests" else ())
    h.start(config([(u, params("1")) for u in urls],
                   section=f"ProxySet lbmethod={lbmethod}\n"
                           f"BBStatusWarmup {RAMP}s {FLOOR}%"))
    wait_members(h, {u: is_("route") for u in urls}, 8, "first checks")
    load = Load(h.port, threads=6, rate=150).start()
    try:
        time.sleep(1.0)
        t_back = back_from_restart(nodes, "w", h)
        m = diag(h)[urls[2]]
        # the ramp runs RAMP seconds while w answers like its peers, and
        # ends at the latest after three ramps (a slow answer on a busy
        # machine holds it back)
        wait_until(lambda: diag(h)[urls[2]]["warmup"] is None,
                   3 * RAMP + 3, interval=0.2, what="the ramp's end")
        t_done = time.time()
        time.sleep(2.2)
    finally:
        load.stop()
    rows = shares(nodes, names, t_back, t_done + 2)
    print(f"\n{lbmethod}: warmup at return {m.get('warmup')}; per second "
          f"{rows}")
    assert m["warmup"] and m["warmup"]["share"] < 0.5, brief(m)
    assert re.match(r"warming, \d+% of its share, \d+ s left$",
                    m["warmup"]["text"]), m["warmup"]

    def frac(row):
        total = sum(row.values())
        return row["w"] / total if total else 0.0
    first = frac(rows[0][1])
    last = [frac(r) for _, r in rows[-2:]]
    assert t_done - t_back >= RAMP - 0.5, (t_done - t_back, rows)
    # a third is its full share; bybusyness offers it to a method that
    # favours the least busy, so its share of a share runs higher
    cap = 0.25 if lbmethod == "bybusyness" else 0.15
    assert first <= cap, (first, rows)
    assert min(last) >= 0.22, (last, rows)
    assert all(r[2] == 200 for r in load.results)


def test_sticky_users_reach_a_warming_member_at_once(env):
    start_nodes, make = env
    names = ("a", "w")
    nodes = start_nodes([(n, "bitbucket", "RUNNING") for n in names])
    a, w = murl(nodes, "a"), murl(nodes, "w")
    h = make()
    h.start(config([(a, params("1", extra="route=a")),
                    (w, params("1", extra="route=w"))],
                   section="ProxySet stickysession=ROUTEID\n"
                           "BBStatusWarmup 30s 5%"))
    wait_members(h, {u: is_("route") for u in (a, w)}, 8, "first checks")
    back_from_restart(nodes, "w", h)
    m = diag(h)[w]
    assert m["warmup"] is not None, brief(m)
    got = [h.get(f"/app/s{i}", headers={"Cookie": "ROUTEID=.w"})[1]
           .get("x-node") for i in range(10)]
    assert got == ["w"] * 10, got


@pytest.mark.allow_log(*OUT_UNDER_LOAD_LOGS)
@pytest.mark.parametrize("how", ["graceful", "restart"])
def test_restart_mid_ramp_goes_on_where_it_was(env, how):
    start_nodes, make = env
    names = ("a", "w")
    nodes = start_nodes([(n, "bitbucket", "RUNNING") for n in names])
    a, w = murl(nodes, "a"), murl(nodes, "w")
    h = make()
    body = config([(a, params("1")), (w, params("1"))],
                  section="BBStatusWarmup 20s 5%")
    h.start(body)
    wait_members(h, {u: is_("route") for u in (a, w)}, 8, "first checks")
    load = Load(h.port, threads=2, rate=50).start()
    try:
        back_from_restart(nodes, "w", h)
        before = wait_until(
            lambda: (lambda m: m if m["warmup"] and m["warmup"]["share"]
                     >= 0.2 else None)(diag(h)[w]), 10,
            what="w a fifth of the way")["warmup"]
        getattr(h, how)()
        after = diag(h)[w]["warmup"]
    finally:
        load.stop()
    print(f"\nbefore {how} {before}; after {after}")
    assert after is not None, "the ramp ended at the restart"
    assert before["share"] - 0.05 <= after["share"] < 1.0, (before, after)


def test_no_ramp_for_members_running_at_start(env):
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("b", "bitbucket", "RUNNING")])
    a, b = murl(nodes, "a"), murl(nodes, "b")
    h = make()
    h.start(config([(a, params("1")), (b, params("1"))],
                   section="BBStatusWarmup 30s"))
    recs = wait_members(h, {u: is_("route") for u in (a, b)}, 8,
                        "first checks")
    assert all(m["warmup"] is None for m in recs.values()), recs
    status, _, body = h.get("/bbstatus?format=prometheus")
    shares_ = re.findall(r'^bbstatus_member_warmup_share\{[^}]*\} (\S+)$',
                         body.decode(), re.M)
    assert shares_ == ["1.000", "1.000"], shares_


def test_bad_warmup_values_stop_configtest(env):
    _, make = env
    h = make()
    for value, why in (("0", "between"), ("5s 0%", "floor"),
                       ("5s 150%", "floor"), ("5s 5", "floor"),
                       ("soon", "must be")):
        rc, out = h.configtest(config(
            [(free_port(), params("1"))], section=f"BBStatusWarmup {value}"))
        assert rc != 0 and f"BBStatusWarmup '{value.split()[-1]}'" in out \
            and why in out, (value, out)
