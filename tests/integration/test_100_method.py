"""hcmethod=BBSTATUS against a real apache2 and simulated Atlassian nodes.

Every test starts its own apache2 (tests/integration/httpd.py) and its own
simulated nodes (tests/nodes/simnode.py) and looks at the outcome twice:
through the module's JSON diagnostics (``SetHandler bbstatus``) and through
real requests sent through the proxy (the ``X-Node`` header names the node
that answered).
"""

import collections
import os
import re
import time
import urllib.parse

import pytest

import httpd as httpd_mod
from httpd import MPMS, HttpdError, wait_until
from simnode import STATUS_CODES
from bbs import (REFUSED_LOGS, balancer, checked, decided, edit_form, manager,
                 member, murl, records, site, status_count, traffic,
                 wait_member)


# --- helpers ---------------------------------------------------------------


class Watch:
    """Polls the diagnostics and keeps, per member, the first record seen
    for every value of its ``checks`` counter.  A record is written only
    after the check's flags are applied, so record k shows the member as
    check k left it."""

    def __init__(self, h, keys):
        self.h = h
        self.keys = list(keys)      # (balancer name, member url)
        self.seen = {k: {} for k in self.keys}

    def poll(self):
        recs = records(self.h)
        for k in self.keys:
            m = recs[k]
            self.seen[k].setdefault(m.get("checks") or 0, m)
        return recs

    def until(self, pred, deadline, what="condition"):
        def probe():
            self.poll()
            return pred(self)
        try:
            return wait_until(probe, deadline, interval=0.04, what=what)
        except AssertionError as e:
            raise AssertionError(f"{e}\nseen: {self.summary()}") from None

    def first(self, key, pred):
        """Smallest checks value whose record satisfies pred, or None."""
        for k in sorted(self.seen[key]):
            if pred(self.seen[key][k]):
                return k
        return None

    def summary(self):
        return {f"{k[1]}": {c: (m.get("state"), m.get("decision"),
                                m.get("in_rotation"), m.get("flags"))
                            for c, m in sorted(v.items())}
                for k, v in self.seen.items()}


# --- 1. every state, both flavors ---------------------------------------

STATES = ["STARTING", "FIRST_RUN", "RUNNING", "MAINTENANCE", "STOPPING",
          "ERROR", "STOPPED"]
ROUTED = {"STARTING", "FIRST_RUN", "RUNNING", "MAINTENANCE"}


@pytest.mark.parametrize("state", [
    s if s != "STOPPED" else pytest.param(
        s, marks=pytest.mark.allow_log(*REFUSED_LOGS))
    for s in STATES])
@pytest.mark.parametrize("flavor", ["bitbucket", "jira"])
def test_state_routes_or_blocks(sim, httpd_factory, flavor, state):
    nodes = sim([("r", "bitbucket", "RUNNING"), ("t", flavor, state)])
    h = httpd_factory()
    params = "hcmethod=BBSTATUS hcinterval=300ms hcpasses=1 hcfails=1"
    # standby has its own tests; here STARTING/MAINTENANCE simply route
    h.start(site(balancer("bb", [f"{murl(nodes, 'r')} {params}",
                                   f"{murl(nodes, 't')} {params}"]),
                   head="BBStatusStandby none\n"))
    t, r = murl(nodes, "t"), murl(nodes, "r")
    wait_member(h, r, decided("route"), 8)
    m = wait_member(h, t, lambda m: checked()(m)
                    and m["decision"] != "pending", 8)

    assert m["hcmethod"] == "BBSTATUS"
    assert m["probe_url"] == f"{t}/status"
    assert m["reason"], m
    if state == "STOPPED":
        assert m["state"] is None, m
        assert m["http_status"] is None, m
    else:
        assert m["state"] == state, m
        assert m["http_status"] == STATUS_CODES[flavor][state], m
    if state in ROUTED:
        assert m["decision"] == "route", m
        assert m["in_rotation"] is True, m
        assert "HcFl" not in m["flags"], m
        assert "Stby" not in m["flags"], m
    else:
        assert m["decision"] == "block", m
        assert m["in_rotation"] is False, m
        assert "HcFl" in m["flags"], m

    seen, answers = traffic(h)
    if state in ROUTED:
        assert seen["t"] > 0, answers
        assert seen["r"] > 0, answers
    else:
        assert seen["t"] == 0, answers
        assert seen["r"] == 20, answers
        assert all(s == 200 for s, _ in answers), answers
    # the node's own count agrees with the X-Node headers
    assert len(nodes.requests("t")) == seen["t"]


# --- 2. back in only after hcpasses good checks ---------------------------

def test_blocked_member_needs_hcpasses(sim, httpd_factory):
    nodes = sim([("r", "bitbucket", "RUNNING"), ("t", "bitbucket",
                                                  "STOPPING")])
    h = httpd_factory()
    params = "hcmethod=BBSTATUS hcinterval=1 hcpasses=2 hcfails=1"
    h.start(site(balancer("bb", [f"{murl(nodes, 'r')} {params}",
                                   f"{murl(nodes, 't')} {params}"])))
    t, r = murl(nodes, "t"), murl(nodes, "r")
    wait_member(h, t, decided("block"), 8)
    wait_member(h, r, decided("route"), 8)

    key = ("balancer://bb", t)
    w = Watch(h, [key])
    w.poll()
    nodes.set("t", state="RUNNING")
    k = w.until(lambda w: w.first(key, lambda m: m["state"] == "RUNNING"),
                8, what="first RUNNING check")
    first = w.seen[key][k]
    # the check before it still saw STOPPING: k is the first RUNNING check
    assert (k - 1) in w.seen[key], w.summary()
    assert w.seen[key][k - 1]["state"] == "STOPPING", w.summary()
    assert first["in_rotation"] is False, first
    assert "HcFl" in first["flags"], first
    assert first["decision"] == "block", first

    seen, answers = traffic(h)
    if member(h, t)["checks"] == k:     # no second check in between
        assert seen["t"] == 0, answers

    w.until(lambda w: (k + 1) in w.seen[key], 8, what="second RUNNING check")
    second = w.seen[key][k + 1]
    assert second["state"] == "RUNNING", second
    assert second["in_rotation"] is True, second
    assert "HcFl" not in second["flags"], second
    assert second["decision"] == "route", second
    seen, answers = traffic(h)
    assert seen["t"] > 0, answers


# --- 3. fast block versus counted block, and fail verdicts ---------------

def _first_changes(w, keys, changed, deadline=8):
    """Checks value of the first record of each member that satisfies
    changed[n], after making sure the record before it did not."""
    def firsts(w):
        ks = {n: w.first(keys[n], changed[n]) for n in keys}
        return ks if all(v is not None for v in ks.values()) else None
    ks = w.until(firsts, deadline, what="first check after the change")
    for n in keys:
        assert (ks[n] - 1) in w.seen[keys[n]] and not changed[n](
            w.seen[keys[n]][ks[n] - 1]), (n, w.summary())
    return ks


def _out_after(w, key, k, fails):
    """Records k .. k+fails-1: in rotation for the first fails-1 of them,
    out from the last one on."""
    w.until(lambda w: k + fails - 1 in w.seen[key], 4 * fails + 2,
            what=f"{fails} checks after the change")
    for i in range(fails - 1):
        rec = w.seen[key][k + i]
        assert rec["in_rotation"] is True, (i, w.summary())
        assert "HcFl" not in rec["flags"], (i, rec)
    rec = w.seen[key][k + fails - 1]
    assert rec["in_rotation"] is False, w.summary()
    assert "HcFl" in rec["flags"], rec
    assert rec["decision"] == "block", rec
    return rec


def test_fast_block_default_and_fail_counting(sim, httpd_factory):
    nodes = sim([("r", "bitbucket", "RUNNING"), ("f", "bitbucket", "RUNNING"),
                 ("g", "jira", "RUNNING")])
    h = httpd_factory()
    params = "hcmethod=BBSTATUS hcinterval=1 hcpasses=1 hcfails=3"
    r = murl(nodes, "r")
    h.start(site(
        balancer("fast", [f"{r} {params}", f"{murl(nodes, 'f')} {params}"]),
        balancer("garb", [f"{r} {params}", f"{murl(nodes, 'g')} {params}"]),
        "ProxyPass /fast/ balancer://fast/\n"
        "ProxyPass /garb/ balancer://garb/\n",
        to=None))
    keys = {"f": ("balancer://fast", murl(nodes, "f")),
            "g": ("balancer://garb", murl(nodes, "g"))}
    for b, u in keys.values():
        wait_member(h, u, decided("route"), 8, balancer=b)

    w = Watch(h, keys.values())
    w.poll()
    nodes.set("f", state="STOPPING")
    nodes.set("g", mode="garbage")
    ks = _first_changes(w, keys, {
        "f": lambda m: m["state"] == "STOPPING",
        "g": lambda m: (m.get("failures") or 0) > 0,
    })
    # fast block (default): out after ONE STOPPING check despite hcfails=3
    fk = w.seen[keys["f"]][ks["f"]]
    assert fk["in_rotation"] is False and "HcFl" in fk["flags"], fk
    assert fk["decision"] == "block", fk
    assert fk["http_status"] == 503, fk
    # a fail verdict (garbage instead of HTTP) needs hcfails checks
    g = _out_after(w, keys["g"], ks["g"], 3)
    assert g["state"] is None and g["http_status"] is None, g
    assert g["failures"] >= 3, g

    for prefix, name in (("/fast/", "f"), ("/garb/", "g")):
        seen, answers = traffic(h, 10, path=prefix + "x")
        assert seen[name] == 0 and seen["r"] == 10, (prefix, answers)


def test_fast_block_off(sim, httpd_factory):
    nodes = sim([("r", "bitbucket", "RUNNING"), ("s", "jira", "RUNNING")])
    h = httpd_factory()
    params = "hcmethod=BBSTATUS hcinterval=1 hcpasses=1 hcfails=3"
    s = murl(nodes, "s")
    h.start(site(balancer("bb", [f"{murl(nodes, 'r')} {params}",
                                   f"{s} {params}"]),
                   head="BBStatusFastBlock off\n"))
    wait_member(h, s, decided("route"), 8)
    keys = {"s": ("balancer://bb", s)}
    w = Watch(h, keys.values())
    w.poll()
    nodes.set("s", state="STOPPING")
    ks = _first_changes(w, keys, {"s": lambda m: m["state"] == "STOPPING"})
    rec = _out_after(w, keys["s"], ks["s"], 3)
    assert rec["state"] == "STOPPING", rec
    seen, answers = traffic(h)
    assert seen["s"] == 0 and seen["r"] == 20, answers


# --- 3b. settings given inside <Proxy balancer://...> ------------------------

def test_settings_in_proxy_section(sim, httpd_factory):
    """BBStatus* directives inside a <Proxy balancer://...> section apply
    to that balancer only, whether or not the <Proxy> line has
    parameters; a balancer without them keeps the defaults."""
    nodes = sim([("r", "bitbucket", "RUNNING"), ("a", "bitbucket",
                                                  "MAINTENANCE"),
                 ("b", "bitbucket", "MAINTENANCE"),
                 ("c", "bitbucket", "MAINTENANCE")])
    h = httpd_factory()
    params = "hcmethod=BBSTATUS hcinterval=300ms hcpasses=1 hcfails=1"
    r = murl(nodes, "r")
    body = f"""
<Proxy balancer://plain>
    BalancerMember {r} {params}
    BalancerMember {murl(nodes, 'a')} {params}
    BBStatusStandby none
</Proxy>
<Proxy balancer://withargs lbmethod=byrequests>
    BalancerMember {r} {params}
    BalancerMember {murl(nodes, 'b')} {params}
    BBStatusStandby none
</Proxy>
<Proxy balancer://dflt>
    BalancerMember {r} {params}
    BalancerMember {murl(nodes, 'c')} {params}
</Proxy>
"""
    h.start(site(body, to="dflt"))
    got = {}
    for n, bal in (("a", "plain"), ("b", "withargs"), ("c", "dflt")):
        got[bal] = wait_member(h, murl(nodes, n), lambda m: checked()(m)
                               and m["decision"] != "pending", 8,
                               balancer=f"balancer://{bal}")
    summary = {b: (m["decision"], m["flags"], m["reason"])
               for b, m in got.items()}
    assert got["dflt"]["decision"] == "standby", summary
    assert got["withargs"]["decision"] == "route", summary
    assert got["plain"]["decision"] == "route", summary
    assert "Stby" not in got["plain"]["flags"], summary


# --- 4. the backup client during maintenance -----------------------------

TOKEN = "secret-token-123"


def test_backup_client_through_maintenance(sim, httpd_factory):
    nodes = sim([("a", "bitbucket", "MAINTENANCE"),
                 ("b", "jira", "MAINTENANCE")])
    # the module at its most talkative: the token must still not show
    h = httpd_factory(module_loglevel="trace8")
    params = "hcmethod=BBSTATUS hcinterval=300ms hcpasses=1 hcfails=1"
    h.start(site(balancer("bb", [f"{murl(nodes, 'a')} {params}",
                                   f"{murl(nodes, 'b')} {params}"])))
    for n in "ab":
        m = wait_member(h, murl(nodes, n), decided("standby"), 8)
        assert m["state"] == "MAINTENANCE", m
        assert "Stby" in m["flags"] and "HcFl" not in m["flags"], m

    seen = collections.Counter()
    bad = []
    for i in range(50):
        status, hdrs, body = h.get(
            "/mvc/maintenance?x",
            headers={"X-Atlassian-Maintenance-Token": TOKEN})
        seen[hdrs.get("x-node")] += 1
        if status != 200 or not body.startswith(b"node="):
            bad.append((i, status, body[:200]))
    assert not bad, bad
    assert set(seen) <= {"a", "b"} and sum(seen.values()) == 50, seen
    answered = [e for n in "ab" for e in nodes.requests(n)
                if e[1] == "/mvc/maintenance"]
    assert len(answered) == 50, answered
    assert all(e[2] == 200 for e in answered), answered

    # both still standby after the traffic
    for n in "ab":
        assert member(h, murl(nodes, n))["decision"] == "standby"
    assert TOKEN not in h.error_log()
    assert TOKEN not in h.access_log()
    assert "/mvc/maintenance?x" in h.access_log()


# --- 5. a GET member and a BBSTATUS member in one balancer ---------------

def test_mixed_balancer(sim, httpd_factory):
    nodes = sim([("g", "bitbucket", "RUNNING"), ("b", "jira", "RUNNING")])
    h = httpd_factory()
    g, b = murl(nodes, "g"), murl(nodes, "b")
    h.start(site(balancer("bb", [
        f"{g} hcmethod=GET hcuri=/status hcinterval=1 hcpasses=1 hcfails=1",
        f"{b} hcmethod=BBSTATUS hcinterval=1 hcpasses=1 hcfails=1"])))
    wait_member(h, b, decided("route"), 8)
    start = {n: status_count(nodes, n) for n in "gb"}
    wait_until(lambda: all(status_count(nodes, n) >= start[n] + 2
                           for n in "gb"), 8,
               what="checks of both members")
    recs = records(h)
    gm, bm = recs[("balancer://bb", g)], recs[("balancer://bb", b)]
    assert gm["hcmethod"] == "GET" and gm["in_rotation"] is True, gm
    assert "checks" not in gm and "decision" not in gm, gm
    assert bm["hcmethod"] == "BBSTATUS" and bm["checks"] >= 2, bm

    nodes.set("b", state="STOPPING")
    wait_member(h, b, decided("block"), 8)
    gm = member(h, g)
    assert gm["in_rotation"] is True and "HcFl" not in gm["flags"], gm
    seen, answers = traffic(h)
    assert seen["g"] == 20 and seen["b"] == 0, answers
    # mod_proxy_hcheck keeps checking the GET member
    n = status_count(nodes, "g")
    wait_until(lambda: status_count(nodes, "g") >= n + 1, 5,
               what="GET checks go on")
    assert "AH03257" not in h.error_log()


# --- 6. ProxyHCTemplate ----------------------------------------------------

def test_hctemplate(sim, httpd_factory):
    nodes = sim([("r", "bitbucket", "RUNNING"), ("t", "bitbucket",
                                                  "RUNNING")])
    h = httpd_factory()
    t, r = murl(nodes, "t"), murl(nodes, "r")
    h.start(site(
        balancer("bb", [f"{r} hctemplate=bbt", f"{t} hctemplate=bbt"]),
        head="ProxyHCTemplate bbt hcmethod=BBSTATUS hcinterval=1\n"))
    # the second check comes half an interval to an interval after the
    # first: from the third on, checks are an interval apart
    m = wait_member(h, t, decided("route", 3), 8)
    assert m["hcmethod"] == "BBSTATUS", m
    assert 700 <= m["interval_ms"] <= 1600, m
    assert m["state"] == "RUNNING" and m["http_status"] == 200, m
    wait_member(h, r, decided("route"), 8)

    nodes.set("t", state="STOPPING")
    m = wait_member(h, t, decided("block"), 8)
    assert m["in_rotation"] is False and "HcFl" in m["flags"], m
    seen, answers = traffic(h)
    assert seen["t"] == 0 and seen["r"] == 20, answers

    nodes.set("t", state="RUNNING")
    m = wait_member(h, t, lambda m: m["decision"] == "route", 8)
    assert m["in_rotation"] is True, m
    seen, answers = traffic(h)
    assert seen["t"] > 0, answers


# --- 7. graceful restarts ----------------------------------------------------

@pytest.mark.parametrize("mpm", MPMS)
def test_graceful_restart_twice(sim, httpd_factory, mpm):
    nodes = sim([("r", "bitbucket", "RUNNING"), ("t", "jira", "RUNNING")])
    h = httpd_factory()
    t, r = murl(nodes, "t"), murl(nodes, "r")
    params = "hcmethod=BBSTATUS hcinterval=300ms hcpasses=1 hcfails=1"
    h.start(site(balancer("bb", [f"{r} {params}", f"{t} {params}"])))
    wait_member(h, t, decided("route", 2), 8)
    main = h.pid

    for flip_to, expect in (("STOPPING", "block"), ("RUNNING", "route")):
        before = status_count(nodes, "t")
        c0 = member(h, t)["checks"]
        h.graceful()
        assert h.pid == main
        c = member(h, t)["checks"]
        assert c >= c0, (c0, c)        # the counter goes on, not from 0
        wait_member(h, t, checked(c + 2), 8, what="checks after graceful")
        wait_until(lambda: status_count(nodes, "t") >= before + 2, 8,
                   what="probes reach the node after graceful")
        nodes.set("t", state=flip_to)
        m = wait_member(h, t, lambda m: m["decision"] == expect
                        and m["state"] == flip_to, 8)
        assert m["in_rotation"] is (expect == "route"), m
        seen, answers = traffic(h)
        if expect == "block":
            assert seen["t"] == 0 and seen["r"] == 20, answers
        else:
            assert seen["t"] > 0, answers
    assert h.is_running() and h.children()
    log = h.error_log()
    assert "exit signal" not in log
    assert "AH03257" not in log
    # event and worker say SIGUSR1, prefork "Graceful restart requested"
    assert len(re.findall(r"SIGUSR1|Graceful restart requested", log)) >= 2


# --- 8. member URL with a path ---------------------------------------------

def test_member_with_path(sim, httpd_factory):
    nodes = sim([("r", "bitbucket", "RUNNING"), ("p1", "bitbucket"),
                 ("p2", "bitbucket"), ("p3", "bitbucket")])
    # answer every path like /status does, so the prefixed probes pass
    for n in ("p1", "p2", "p3"):
        nodes.set(n, mode="custom", scope="all")
    h = httpd_factory()
    params = "hcmethod=BBSTATUS hcinterval=300ms hcpasses=1 hcfails=1"
    members = {
        "p1": murl(nodes, "p1", "/bitbucket"),
        "p2": murl(nodes, "p2", "/bitbucket"),
        "p3": murl(nodes, "p3", "/bitbucket"),
    }
    h.start(site(balancer("bb", [
        f"{murl(nodes, 'r')} {params}",
        f"{members['p1']} {params}",
        f"{members['p2']} {params} hcuri=/status",
        f"{members['p3']} {params} hcuri=custom/status"])))
    want = {"p1": "/bitbucket/status", "p2": "/bitbucket/status",
            "p3": "/bitbucket/custom/status"}
    wait_until(lambda: all(status_count(nodes, n, p) >= 2
                           for n, p in want.items()), 8,
               what="prefixed probes")
    for n, p in want.items():
        paths = nodes.node(n)["counts"]["by_path"]
        assert set(paths) == {p}, (n, paths)
        assert not any("//" in k for k in paths), (n, paths)
        m = member(h, members[n])
        assert m["probe_url"] == murl(nodes, n, p), m
        assert m["decision"] == "route" and m["state"] == "RUNNING", m


# --- 9. switching the method in balancer-manager ---------------------------


def _switch_method(h, worker_url, method, hcuri=None):
    form = edit_form(h, worker_url)
    assert method in form.options.get("w_hm", []), form.options
    assert form.fields.get("w") == worker_url, form.fields
    assert form.fields.get("b") == "bb", form.fields
    assert form.fields.get("nonce"), form.fields
    fields = dict(form.fields)
    fields["w_hm"] = method
    if hcuri is not None:
        fields["w_hu"] = hcuri
    body = urllib.parse.urlencode(fields)
    status, _, resp = h.get(form.action, method="POST", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Referer": h.url("/balancer-manager")})
    assert status in (200, 302, 303), resp
    # the manager's own table shows the new method for the worker
    page = manager(h)
    row = re.search(re.escape(worker_url) + r"</a></td>(.*?)</tr>", page,
                    re.S)
    assert row and f"<td>{method}</td>" in row.group(1), page
    return fields


def test_balancer_manager_switches_method(sim, httpd_factory):
    nodes = sim([("r", "bitbucket", "RUNNING"), ("t", "bitbucket",
                                                  "RUNNING")])
    h = httpd_factory()
    t, r = murl(nodes, "t"), murl(nodes, "r")
    params = "hcmethod=BBSTATUS hcinterval=1 hcpasses=1 hcfails=1"
    # stock checks show in mod_proxy_hcheck's debug lines
    level = "info proxy_hcheck:debug" + (
        f" bbstatus:{h.module_loglevel}" if h.module_loglevel else "")
    h.start(site(balancer("bb", [f"{r} {params}",
                                   f"{t} {params} hcuri=/status"]),
                   head=f"LogLevel {level}\n"))
    m = wait_member(h, t, decided("route"), 8)
    assert m["hcmethod"] == "BBSTATUS"

    fields = _switch_method(h, t, "GET", hcuri="/status")
    assert fields["w_hi"] in ("1000", "1000ms"), fields
    m = wait_member(h, t, lambda m: m["hcmethod"] == "GET", 5)
    assert "checks" not in m, m
    # from now on only mod_proxy_hcheck probes the node
    base = status_count(nodes, "t")
    wait_until(lambda: status_count(nodes, "t") >= base + 2, 8,
               what="stock GET checks of /status")
    h.wait_log(r"AH03256: Threaded Health checking " + re.escape(t) + r"\s*$"
               + r"(?:.*\n)*?.*AH03251: Health check GET Status \(0\)",
               deadline=5)
    assert member(h, t)["hcmethod"] == "GET"
    assert member(h, t)["in_rotation"] is True

    _switch_method(h, t, "BBSTATUS")
    m = wait_member(h, t, lambda m: m["hcmethod"] == "BBSTATUS"
                    and "checks" in m, 5)
    c = m["checks"]
    wait_member(h, t, checked(c + 2), 8, what="BBSTATUS checks again")
    nodes.set("t", state="STOPPING")
    m = wait_member(h, t, lambda m: m["decision"] == "block"
                    and m["state"] == "STOPPING", 8)
    assert m["in_rotation"] is False, m
    seen, answers = traffic(h)
    assert seen["t"] == 0, answers
    assert "AH03257" not in h.error_log()


def _most_threads(h):
    """Threads of the child with the most (the checking one: the others
    run the same MPM threads), once that count holds for 0.3 s."""
    def count():
        n = 0
        for pid in h.children():
            try:
                n = max(n, len(os.listdir(f"/proc/{pid}/task")))
            except OSError:
                pass
        return n
    seen = []

    def steady():
        seen.append(count())
        return seen[-1] if len(seen) >= 4 and len(set(seen[-4:])) == 1 \
            else None
    return wait_until(steady, 10, interval=0.1, what="steady thread count")


def test_checker_threads_one_per_member_slot(sim, httpd_factory):
    """The checking child starts one probe thread per member slot (growth
    included), up to BBStatusThreads, all at once: a member never has two
    checks in flight, so more would only sit idle, and each thread makes
    httpd's per-request times() call (ExtendedStatus) dearer."""
    nodes = sim([("a", "bitbucket", "RUNNING"), ("b", "jira", "RUNNING")])
    a, b = murl(nodes, "a"), murl(nodes, "b")
    p = "hcmethod=BBSTATUS hcinterval=1 hcpasses=1 hcfails=1"
    counts = {}
    for threads in (1, 3, 16):
        h = httpd_factory()
        # mod_proxy_hcheck's own pool lives in one child, maybe another
        h.start(site(balancer("bb", [(a, p), (b, p)], "ProxySet growth=3"),
                     head=f"ProxyHCTPsize 0\nBBStatusThreads {threads}\n"))
        wait_member(h, a, decided("route"), 8)
        wait_member(h, b, decided("route"), 8)
        counts[threads] = _most_threads(h)
        h.stop()
    # 2 members + 3 growth slots = 5 threads; 3 and 1 where capped
    assert counts[3] - counts[1] == 2, counts
    assert counts[16] - counts[1] == 4, counts


# --- 10. a hanging member does not hold up the others -----------------------

def test_hanging_member(sim, httpd_factory):
    """While one member's probe hangs until BBStatusTimeout, the other
    member is checked on schedule.  The other one is checked every 100 ms
    (every checker round), so it is always due in the same round as the
    hanging one and must not wait for it."""
    nodes = sim([("a", "bitbucket", "RUNNING"), ("b", "jira", "RUNNING")])
    h = httpd_factory()
    params = "hcmethod=BBSTATUS hcpasses=1 hcfails=1"
    a, b = murl(nodes, "a"), murl(nodes, "b")
    ka, kb = ("balancer://bb", a), ("balancer://bb", b)
    h.start(site(balancer("bb", [f"{a} {params} hcinterval=1",
                                   f"{b} {params} hcinterval=100ms"]),
                   head="BBStatusTimeout 1\n"))
    wait_member(h, a, decided("route"), 8)
    wait_member(h, b, decided("route", 3), 8)

    w = Watch(h, [ka, kb])
    w.poll()
    nodes.set("a", mode="hang", scope="status")
    t0 = time.monotonic()
    b0 = member(h, b)["checks"]
    w.until(lambda w: w.poll()[ka]["in_rotation"] is False,
            6, what="hanging member failed")
    took = time.monotonic() - t0
    # next check within 1 s, its time limit 1 s: generous slack for load
    assert took < 3.0, took
    m = member(h, a)
    assert m["decision"] == "block" and "HcFl" in m["flags"], m
    assert m["state"] is None and m["http_status"] is None, m
    assert "timed out" in m["reason"], m

    # the hang goes on (every probe of a takes the full second); b keeps
    # its schedule meanwhile
    end = time.monotonic() + 2.5
    while time.monotonic() < end:
        w.poll()
        time.sleep(0.03)
    span = time.monotonic() - t0
    bseen = w.seen[kb]
    gained = max(bseen) - b0
    # due every 100 ms: a third of that rate leaves room for load
    expected = span / 0.1 / 3
    # 600 ms leaves room for load; waiting behind the hanging probe is
    # about 1000 ms
    late = [(c, round(rec["interval_ms"])) for c, rec in sorted(bseen.items())
            if c > b0 + 1 and rec["interval_ms"] > 600]
    assert gained >= expected and not late, (
        f"checks of {b} (every 100 ms) while {a} hangs: {gained} in "
        f"{span:.1f} s (want >= {expected:.0f}); intervals over 600 ms "
        f"(checks, interval_ms): {late}")
    recs = records(h)
    assert recs[kb]["in_rotation"] is True, recs[kb]
    assert recs[ka]["failures"] >= 2, recs[ka]
    nodes.set("a", mode="normal")


# --- 11. directive errors -----------------------------------------------------

BAD_DIRECTIVES = [
    ("BBStatusRoute", "BBStatusRoute", None),
    ("BBStatusRoute STOP-PING", "BBStatusRoute", "STOP-PING"),
    ('BBStatusStandby ""', "BBStatusStandby", ""),
    ("BBStatusMaxBody 0", "BBStatusMaxBody", "0"),
    ("BBStatusMaxBody 2M", "BBStatusMaxBody", "2M"),
    ("BBStatusMaxBody abc", "BBStatusMaxBody", "abc"),
    ("BBStatusTimeout 0", "BBStatusTimeout", "0"),
    ("BBStatusTimeout 1000", "BBStatusTimeout", "1000"),
    ("BBStatusFastBlock maybe", "BBStatusFastBlock", "maybe"),
    ("BBStatusReprobeInterval -1", "BBStatusReprobeInterval", "-1"),
    ("BBStatusPanic maybe", "BBStatusPanic", "maybe"),
    ("BBStatusFastInterval 10ms", "BBStatusFastInterval", "10ms"),
    ("BBStatusThreads 0", "BBStatusThreads", "0"),
]


def test_directive_errors(httpd_factory):
    h = httpd_factory()
    problems = []
    for line, directive, value in BAD_DIRECTIVES:
        rc, out = h.configtest(line + "\n")
        named = [l for l in out.splitlines() if directive in l]
        if rc == 0 or not named:
            problems.append((line, rc, out))
            continue
        if value is None:
            continue
        if value == "":
            ok = any("''" in l or '""' in l for l in named)
        else:
            rx = re.compile(r"(?<![\w.-])" + re.escape(value) + r"(?![\w.-])")
            ok = any(rx.search(l.split(directive, 1)[1]) for l in named)
        if not ok:
            problems.append((line, rc, out))
    # BBStatusThreads belongs to the main server only
    rc, out = h.configtest("<VirtualHost 127.0.0.1:@PORT@>\n"
                           "    BBStatusThreads 7\n</VirtualHost>\n")
    if rc == 0 or "BBStatusThreads" not in out or "VirtualHost" not in out:
        problems.append(("BBStatusThreads in VirtualHost", rc, out))
    assert not problems, "\n\n".join(
        f"{line!r}: rc={rc}\n{out}" for line, rc, out in problems)


# sections where nothing reads the balancer settings
NOT_READ_IN = {
    "Location": ("<Location /x>", "</Location>"),
    "LocationMatch": ("<LocationMatch ^/x>", "</LocationMatch>"),
    "Directory": ("<Directory /tmp>", "</Directory>"),
    "Files": ("<Files x.html>", "</Files>"),
    "If": ("<If \"%{REQUEST_URI} == '/x'\">", "</If>"),
    "Limit": ("<Location /y>\n<Limit GET>", "</Limit>\n</Location>"),
}


@pytest.mark.parametrize("section", sorted(NOT_READ_IN))
def test_directives_refused_where_nothing_reads_them(httpd_factory,
                                                    section):
    h = httpd_factory()
    head, tail = NOT_READ_IN[section]
    for line in VALID_IN_SECTION.strip().splitlines():
        directive = line.split()[0]
        rc, out = h.configtest(f"{head}\n{line}\n{tail}\n")
        assert rc != 0, f"{line!r} in <{section}> was accepted:\n{out}"
        named = [x for x in out.splitlines() if directive in x]
        assert named and "<Proxy balancer://" in named[0], out
    # conditional sections inside a <Proxy> change nothing
    rc, out = h.configtest(
        "<Proxy balancer://x>\n    BalancerMember http://127.0.0.1:9 "
        "hcmethod=BBSTATUS\n<IfModule mod_proxy.c>\n"
        "    BBStatusStandby none\n</IfModule>\n</Proxy>\n")
    assert rc == 0, out


VALID_IN_SECTION = """
    BBStatusRoute RUNNING FIRST_RUN MAINTENANCE STARTING
    BBStatusStandby STARTING
    BBStatusMaxBody 16k
    BBStatusTimeout 500ms
    BBStatusFastBlock off
    BBStatusReprobeInterval 0
    BBStatusPanic off
    BBStatusFastInterval 200ms
"""


def test_valid_directives(httpd_factory):
    h = httpd_factory()
    bodies = {
        "main server": "BBStatusThreads 8\nBBStatusTimeout 2s\n"
                       "BBStatusStandby none\nBBStatusMaxBody 1M\n",
        "Proxy": "<Proxy balancer://x>\n    BalancerMember "
                 "http://127.0.0.1:9 hcmethod=BBSTATUS hcinterval=1\n"
                 + VALID_IN_SECTION + "</Proxy>\n",
        "VirtualHost": "<VirtualHost 127.0.0.1:@PORT@>\n"
                       "    ServerName vh.example\n"
                       "    BBStatusTimeout 300s\n"
                       "    BBStatusReprobeInterval 3600s\n"
                       "    BBStatusFastInterval off\n"
                       "    BBStatusStandby none\n"
                       + VALID_IN_SECTION + "</VirtualHost>\n",
    }
    for where, body in bodies.items():
        rc, out = h.configtest(body)
        assert rc == 0, f"{where}:\n{out}"
        assert "Syntax OK" in out, f"{where}:\n{out}"


# --- 12. mod_proxy_hcheck missing ----------------------------------------

@pytest.mark.allow_log(r"BBS0001", r"Pre-configuration failed",
                       r"Configuration Failed")
def test_needs_mod_proxy_hcheck(sim, httpd_factory, monkeypatch):
    # the harness loads httpd.BASE_MODULES; leave mod_proxy_hcheck out
    monkeypatch.setattr(httpd_mod, "BASE_MODULES", tuple(
        m for m in httpd_mod.BASE_MODULES if m != "proxy_hcheck"))
    nodes = sim([("r", "bitbucket", "RUNNING")])
    h = httpd_factory()
    body = site(balancer("bb", [f"{murl(nodes, 'r')} hcmethod=BBSTATUS "
                                  f"hcinterval=1"]))
    text = h.config_text(body)
    assert "mod_proxy_hcheck.so" not in text
    assert "mod_bbstatus.so" in text

    rc, out = h.configtest(body)
    assert rc != 0, out
    assert any("BBS0001" in l and "mod_proxy_hcheck" in l
               for l in out.splitlines()), out

    with pytest.raises(HttpdError) as e:
        h.start(body)
    msg = str(e.value)
    assert any("BBS0001" in l and "mod_proxy_hcheck" in l
               for l in msg.splitlines()), msg
    assert not h.is_running()


# --- 13. BBSTATUS on a worker outside a balancer ----------------------------

@pytest.mark.allow_log(r"BBS0006")
def test_plain_proxypass_worker(sim, httpd_factory):
    nodes = sim([("p", "bitbucket", "RUNNING"), ("r", "bitbucket",
                                                  "RUNNING")])
    h = httpd_factory()
    p = murl(nodes, "p")
    h.start(site(
        balancer("bb", [f"{murl(nodes, 'r')} hcmethod=BBSTATUS "
                        f"hcinterval=300ms"]),
        head=f"ProxyPass /x {p} hcmethod=BBSTATUS hcinterval=300ms\n"))
    status, hdrs, body = h.get("/x/hello")
    assert status == 200 and hdrs.get("x-node") == "p", (status, body)
    # time passes with the checker running: the balancer member is checked
    wait_member(h, murl(nodes, "r"), checked(3), 8)
    lines = [l for l in h.error_log().splitlines() if "BBS0006" in l]
    assert len(lines) == 1, lines
    assert "[bbstatus:warn]" in lines[0], lines
    assert p in lines[0], lines
    assert "only balancer members are checked" in lines[0], lines
    # and it really is not checked by anyone
    assert status_count(nodes, "p") == 0, nodes.node("p")["counts"]
    assert status_count(nodes, "r") >= 3


# --- 14. IPv6 member ---------------------------------------------------------

def test_ipv6_member(sim, httpd_factory):
    v6 = sim([("v", "bitbucket", "RUNNING")], host="::1")
    v4 = sim([("r", "jira", "RUNNING")])
    h = httpd_factory()
    v = f"http://[::1]:{v6.port('v')}"
    params = "hcmethod=BBSTATUS hcinterval=300ms hcpasses=1 hcfails=1"
    h.start(site(balancer("bb", [f"{murl(v4, 'r')} {params}",
                                   f"{v} {params}"])))
    m = wait_member(h, v, decided("route", 2), 8)
    assert m["probe_url"] == f"{v}/status", m
    assert m["state"] == "RUNNING" and m["http_status"] == 200, m
    assert m["in_rotation"] is True, m
    assert status_count(v6, "v") >= 2
    seen, answers = traffic(h)
    assert seen["v"] > 0 and seen["r"] > 0, answers

    v6.set("v", state="STOPPING")
    m = wait_member(h, v, decided("block"), 8)
    assert m["state"] == "STOPPING" and m["http_status"] == 503, m
    seen, answers = traffic(h)
    assert seen["v"] == 0 and seen["r"] == 20, answers
