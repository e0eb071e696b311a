"""Integration tests of the diagnostics: the ``bbstatus`` handler (HTML,
JSON, Prometheus text), the mod_status section, and what they show when
the request is served by a child that does not run the checker.

Every test runs a real apache2 against simulated Atlassian nodes
(tests/nodes/simnode.py) and checks what the diagnostics say against what
the nodes were told to answer.
"""

import datetime
import html
import json
import math
import os
import re
import time
import urllib.parse

import pytest

from httpd import MPMS, REPO, free_port, wait_until
from bbs import (BB, brief, config, deadline_for, find_member, get_json,
                 member_url, murl, params, raw_http, site,
                 wait_member)

LATER = "balancer://later"

DECISIONS = {"pending", "route", "block", "standby", "panic"}

TOP_KEYS = {"module", "version", "generated_at", "balancers"}
PLAIN_MEMBER_KEYS = {"name", "hcmethod", "in_rotation", "in_rotation_sticky",
                     "flags"}
BBS_MEMBER_KEYS = PLAIN_MEMBER_KEYS | {
    "probe_url", "state", "http_status", "decision", "reason", "checked_at",
    "changed_at", "latency_ms", "interval_ms", "passes", "hcpasses", "fails",
    "hcfails", "checks", "failures", "history"}
HISTORY_KEYS = {"at", "from", "to", "state", "reason"}

METRICS = {
    "bbstatus_member_in_rotation": "gauge",
    "bbstatus_member_state": "gauge",
    "bbstatus_member_decision": "gauge",
    "bbstatus_member_http_status": "gauge",
    "bbstatus_checks_total": "counter",
    "bbstatus_check_failures_total": "counter",
    "bbstatus_probe_seconds": "gauge",
    "bbstatus_member_changed_timestamp_seconds": "gauge",
    "bbstatus_member_in_rotation_sticky": "gauge",
    "bbstatus_member_checked_timestamp_seconds": "gauge",
    "bbstatus_member_decision_changes_total": "counter",
    "bbstatus_member_hcinterval_seconds": "gauge",
    "bbstatus_member_warmup_share": "gauge",
}
# labels a metric carries after balancer and member
EXTRA_LABEL = {"bbstatus_member_state": "state",
               "bbstatus_member_decision": "decision"}

SCRIPT_STATE = "<script>alert(1)</script>"
QUOTE_STATE = 'q"uo\\te'           # a quote and a backslash


# --- helpers --------------------------------------------------------------


RFC3339_Z = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?Z$")


def parse_ts(text):
    """An RFC 3339 UTC timestamp ending in Z -> aware datetime."""
    assert isinstance(text, str), text
    m = RFC3339_Z.match(text)
    assert m, f"not an RFC 3339 UTC timestamp ending in Z: {text!r}"
    y, mo, d, hh, mm, ss = (int(g) for g in m.groups()[:6])
    frac = float(m.group(7)) if m.group(7) else 0.0
    utc = datetime.timezone.utc
    return datetime.datetime(y, mo, d, hh, mm, ss, tzinfo=utc) \
        + datetime.timedelta(seconds=frac)


def assert_recent(text, slack=120):
    t = parse_ts(text)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - t).total_seconds()) < slack, (text, now)
    return t


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) \
        and math.isfinite(v)


def check_member_types(m):
    """Types of every field of a BBSTATUS member."""
    assert BBS_MEMBER_KEYS <= set(m), sorted(BBS_MEMBER_KEYS - set(m))
    assert isinstance(m["name"], str) and m["name"]
    assert m["hcmethod"] == "BBSTATUS"
    assert isinstance(m["in_rotation"], bool), m
    # no stickysession in these balancers: no request names a member
    assert m["in_rotation_sticky"] is None, m
    assert isinstance(m["flags"], str), m
    assert m["probe_url"] == m["name"] + "/status", m
    assert m["state"] is None or isinstance(m["state"], str), m
    assert m["http_status"] is None or is_int(m["http_status"]), m
    assert m["decision"] in DECISIONS, m
    assert isinstance(m["reason"], str) and m["reason"], m
    for k in ("checked_at", "changed_at"):
        assert m[k] is None or parse_ts(m[k]), m
    for k in ("latency_ms", "interval_ms"):
        assert m[k] is None or is_number(m[k]), m
    for k in ("passes", "hcpasses", "fails", "hcfails", "checks",
              "failures"):
        assert is_int(m[k]) and m[k] >= 0, (k, m)
    assert isinstance(m["history"], list), m
    assert len(m["history"]) <= 8, m
    for e in m["history"]:
        assert set(e) == HISTORY_KEYS, e
        parse_ts(e["at"])
        assert e["from"] in DECISIONS and e["to"] in DECISIONS, e
        assert e["from"] != e["to"], e
        assert e["state"] is None or isinstance(e["state"], str), e
        assert isinstance(e["reason"], str), e
    ats = [parse_ts(e["at"]) for e in m["history"]]
    assert ats == sorted(ats, reverse=True), \
        f"history not newest first: {m['history']}"


# Prometheus text exposition: name{label="value",...} number
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABEL = rf'[a-zA-Z_][a-zA-Z0-9_]*={LABEL_VALUE}'
SAMPLE_RE = re.compile(
    rf'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{{({LABEL}(?:,{LABEL})*)\}} (\S+)$')
LABEL_RE = re.compile(rf'([a-zA-Z_][a-zA-Z0-9_]*)=({LABEL_VALUE})')
NUMBER_RE = re.compile(r'^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$')
HELP_RE = re.compile(r'^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) \S.*$')
TYPE_RE = re.compile(
    r'^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|'
    r'untyped)$')


def unescape_label(quoted):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n"
                  else m.group(1), quoted[1:-1])


def parse_prometheus(text):
    """-> (samples [(name, [(label, value), ...], float)], help, type).
    Fails on any line that is not HELP, TYPE or a well-formed sample."""
    samples, helps, types = [], {}, {}
    assert text.endswith("\n"), text[-200:]
    for line in text.splitlines():
        if line.startswith("#"):
            m = HELP_RE.match(line)
            if m:
                assert m.group(1) not in helps, f"second HELP: {line!r}"
                helps[m.group(1)] = line
                continue
            m = TYPE_RE.match(line)
            assert m, f"bad comment line {line!r}"
            assert m.group(1) not in types, f"second TYPE: {line!r}"
            types[m.group(1)] = m.group(2)
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.groups()
        assert NUMBER_RE.match(value), f"value not a number: {line!r}"
        pairs = [(k, unescape_label(v)) for k, v in LABEL_RE.findall(labels)]
        # the label regex must have consumed the whole label set
        assert ",".join(f"{k}={v}" for k, v in LABEL_RE.findall(labels)) \
            == labels, line
        assert name in helps and name in types, \
            f"sample before its HELP/TYPE: {line!r}"
        samples.append((name, pairs, float(value)))
    return samples, helps, types


def prom_value(samples, name, balancer, member, **extra):
    """The value of the one sample of name for balancer/member (and the
    extra labels given); None when there is none."""
    found = [v for n, labels, v in samples
             if n == name and dict(labels).get("balancer") == balancer
             and dict(labels).get("member") == member
             and all(dict(labels).get(k) == x for k, x in extra.items())]
    assert len(found) <= 1, (name, member, found)
    return found[0] if found else None


AUTO_MEMBER_RE = re.compile(
    r"^BBStatusMember: (\S+) (\S+) decision=(\S+) in_rotation=([01]) "
    r"in_rotation_sticky=([01-]) state=(\S+) http_status=(\d+) checks=(\d+) failures=(\d+) "
    r"latency_ms=(\d+(?:\.\d+)?) reason=(\S*) vhost=(\S+)$")


def scenario(env, interval="1", passes=2, fails=2, **httpd_kw):
    """Three members in balancer://bb: r (RUNNING, BBSTATUS), s (STOPPING,
    BBSTATUS), g (RUNNING, hcmethod=GET).  -> (h, nodes, urls)."""
    start_nodes, make = env
    nodes = start_nodes([("r", "bitbucket", "RUNNING"),
                         ("s", "bitbucket", "STOPPING"),
                         ("g", "bitbucket", "RUNNING")])
    urls = {n: member_url(nodes.port(n)) for n in ("r", "s", "g")}
    h = make(**httpd_kw)
    h.start(site((BB, [
        (nodes.port("r"), params(interval, passes, fails)),
        (nodes.port("s"), params(interval, passes, fails)),
        (nodes.port("g"), f"hcmethod=GET hcinterval={interval} "
                          f"hcuri=/status"),
    ])))
    return h, nodes, urls


def wait_scenario(h, urls, deadline):
    wait_member(h, urls["r"], lambda m: m["decision"] == "route",
                deadline, "RUNNING member routed")
    return wait_member(h, urls["s"], lambda m: m["decision"] == "block",
                       deadline, "STOPPING member blocked")


# --- 1. JSON ----------------------------------------------------------------

def test_json_document(env):
    start_nodes, make = env
    # the member of balancer://later is Stopped by the administrator: it
    # is not checked, so it shows as before a first check
    late_port = free_port()
    nodes = start_nodes([("r", "bitbucket", "RUNNING"),
                         ("s", "bitbucket", "STOPPING"),
                         ("g", "bitbucket", "RUNNING"),
                         ("p", "bitbucket", "RUNNING", late_port)])
    r, s, g, p = (member_url(nodes.port(n)) for n in "rsgp")
    h = make()
    h.start(site(
        (BB, [(nodes.port("r"), params("1", 2, 2)),
              (nodes.port("s"), params("1", 2, 2)),
              (nodes.port("g"), "hcmethod=GET hcinterval=1 hcuri=/status")]),
        (LATER, [(late_port, "hcmethod=BBSTATUS hcinterval=30 hcpasses=2 "
                             "hcfails=2 status=+S")])))

    # before its first check
    doc = get_json(h)
    m = find_member(doc, LATER, p)
    check_member_types(m)
    assert m["decision"] == "pending", m
    assert m["state"] is None, m
    assert m["http_status"] is None, m
    assert m["checked_at"] is None, m
    assert m["changed_at"] is None, m
    assert m["latency_ms"] is None, m
    assert m["checks"] == 0 and m["failures"] == 0, m
    assert m["history"] == [], m
    assert nodes.node("p")["counts"]["status"] == 0

    wait_scenario(h, {"r": r, "s": s}, deadline_for(1))

    by_query = get_json(h, "/bbstatus?format=json")
    by_accept = get_json(h, "/bbstatus",
                         headers={"Accept": "application/json"})
    for doc in (by_query, by_accept):
        assert TOP_KEYS <= set(doc), sorted(doc)
        assert doc["module"] == "mod_bbstatus"
        assert isinstance(doc["version"], str)
        assert re.match(r"^\d+\.\d+\.\d+", doc["version"]), doc["version"]
        assert_recent(doc["generated_at"])
        assert isinstance(doc["balancers"], list)
        assert [b["name"] for b in doc["balancers"]] == [BB, LATER]
        bb = doc["balancers"][0]
        assert [m["name"] for m in bb["members"]] == [r, s, g]
        assert [m["name"] for m in doc["balancers"][1]["members"]] == [p]

        run = find_member(doc, BB, r)
        check_member_types(run)
        assert run["decision"] == "route", run
        assert run["state"] == "RUNNING", run
        assert run["http_status"] == 200, run
        assert run["in_rotation"] is True, run
        assert "HcFl" not in run["flags"].split(), run
        assert_recent(run["checked_at"])
        assert_recent(run["changed_at"])
        assert parse_ts(run["checked_at"]) >= parse_ts(run["changed_at"])
        assert is_number(run["latency_ms"]) and run["latency_ms"] >= 0, run
        assert run["checks"] >= 1, run
        assert run["failures"] == 0, run
        assert run["hcpasses"] == 2 and run["hcfails"] == 2, run
        assert 0 <= run["passes"] <= 2 and 0 <= run["fails"] <= 2, run
        assert "BBStatusRoute" in run["reason"], run
        assert run["history"], run
        oldest = run["history"][-1]
        assert (oldest["from"], oldest["to"], oldest["state"]) == \
            ("pending", "route", "RUNNING"), run["history"]
        assert run["history"][0]["to"] == "route", run["history"]

        stop = find_member(doc, BB, s)
        check_member_types(stop)
        assert stop["decision"] == "block", stop
        assert stop["state"] == "STOPPING", stop
        assert stop["http_status"] == 503, stop
        assert stop["in_rotation"] is False, stop
        assert "HcFl" in stop["flags"].split(), stop
        assert "STOPPING" in stop["reason"], stop
        assert "BBStatusRoute" in stop["reason"], stop
        assert stop["checks"] >= 1, stop
        assert stop["history"][0]["to"] == "block", stop

        get = find_member(doc, BB, g)
        assert get["hcmethod"] == "GET", get
        assert isinstance(get["in_rotation"], bool), get
        assert isinstance(get["flags"], str), get
        assert "decision" not in get, get
        assert set(get) == PLAIN_MEMBER_KEYS, get

        # still pending: its first check is many seconds away
        late = find_member(doc, LATER, p)
        assert late["decision"] == "pending", late
        assert late["checked_at"] is None and late["state"] is None, late
    assert nodes.node("p")["counts"]["status"] == 0


# --- 2. escaping ------------------------------------------------------------

def test_hostile_state_is_escaped_per_format(env):
    start_nodes, make = env
    nodes = start_nodes([("x", "bitbucket", "RUNNING"),
                         ("q", "bitbucket", "RUNNING")])
    nodes.set("x", mode="custom", custom={
        "status": 200, "content_type": "application/json",
        "body": json.dumps({"state": SCRIPT_STATE})})
    nodes.set("q", mode="custom", custom={
        "status": 200, "content_type": "application/json",
        "body": json.dumps({"state": QUOTE_STATE})})
    x, q = member_url(nodes.port("x")), member_url(nodes.port("q"))
    h = make()
    h.start(site((BB, [(nodes.port("x"), params("200ms")),
                         (nodes.port("q"), params("200ms"))])))
    dl = deadline_for(0.2)
    wait_member(h, x, lambda m: m["state"] is not None, dl,
                "state of x known")
    wait_member(h, q, lambda m: m["state"] is not None, dl,
                "state of q known")

    # HTML is the default
    status, hdrs, body = h.get("/bbstatus")
    assert status == 200
    assert hdrs["Content-Type"].split(";")[0].strip() == "text/html", hdrs
    html = body.decode("utf-8")
    assert x in html and q in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, html
    assert "<script>alert(1)" not in html, html
    assert "<script" not in html.lower(), html
    assert "uo\\te" in html, html

    # the server-status section escapes too
    status, _, body = h.get("/server-status")
    assert status == 200
    page = body.decode("utf-8", "replace")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page

    # JSON: the state intact, as a JSON string
    doc = get_json(h)
    mx, mq = find_member(doc, BB, x), find_member(doc, BB, q)
    assert mx["state"] == SCRIPT_STATE, mx
    assert mq["state"] == QUOTE_STATE, mq
    assert mx["decision"] == "block" and mq["decision"] == "block"
    assert mx["history"][-1]["state"] == SCRIPT_STATE, mx["history"]
    assert mq["history"][-1]["state"] == QUOTE_STATE, mq["history"]
    assert SCRIPT_STATE in mx["reason"]

    # Prometheus: every line parses, the labels carry the state back
    status, hdrs, body = h.get("/bbstatus?format=prometheus")
    assert status == 200
    text = body.decode("utf-8")
    samples, _, _ = parse_prometheus(text)
    assert prom_value(samples, "bbstatus_member_state", BB, x,
                      state=SCRIPT_STATE) == 1, text
    assert prom_value(samples, "bbstatus_member_state", BB, q,
                      state=QUOTE_STATE) == 1, text
    assert 'state="q\\"uo\\\\te"' in text, text


# --- 3. Prometheus ----------------------------------------------------------

def test_prometheus(env):
    h, nodes, urls = scenario(env, interval="200ms")
    wait_scenario(h, urls, deadline_for(0.2))
    r, s, g = urls["r"], urls["s"], urls["g"]

    def scrape():
        status, hdrs, body = h.get("/bbstatus?format=prometheus")
        assert status == 200, body[:300]
        ctype = hdrs.get("Content-Type", "")
        assert ctype.split(";")[0].strip() == "text/plain", ctype
        return parse_prometheus(body.decode("utf-8"))

    samples, helps, types = scrape()
    for name, kind in METRICS.items():
        assert name in helps, f"no HELP for {name}"
        assert types.get(name) == kind, (name, types.get(name))
    for name, labels, value in samples:
        keys = [k for k, _ in labels]
        want = ["balancer", "member", "vhost"] + (
            [EXTRA_LABEL[name]] if name in EXTRA_LABEL else [])
        assert keys == want, (name, labels)
        assert dict(labels)["balancer"] == BB
        # the main server: its ServerName, which has no port here
        assert dict(labels)["vhost"] == "127.0.0.1", labels
        assert dict(labels)["member"] in (r, s, g)
        assert name in METRICS, name

    rot = "bbstatus_member_in_rotation"
    assert prom_value(samples, rot, BB, r) == 1
    assert prom_value(samples, rot, BB, s) == 0
    assert prom_value(samples, rot, BB, g) in (0, 1)
    assert prom_value(samples, "bbstatus_member_decision", BB, r,
                      decision="route") == 1
    assert prom_value(samples, "bbstatus_member_decision", BB, s,
                      decision="block") == 1
    assert prom_value(samples, "bbstatus_member_state", BB, r,
                      state="RUNNING") == 1
    assert prom_value(samples, "bbstatus_member_state", BB, s,
                      state="STOPPING") == 1
    assert prom_value(samples, "bbstatus_member_http_status", BB, r) == 200
    assert prom_value(samples, "bbstatus_member_http_status", BB, s) == 503
    assert prom_value(samples, "bbstatus_check_failures_total", BB, r) == 0
    probe = prom_value(samples, "bbstatus_probe_seconds", BB, r)
    assert probe is not None and 0 <= probe < 5, probe
    changed = prom_value(samples, "bbstatus_member_changed_timestamp_seconds",
                         BB, s)
    assert changed is not None and abs(time.time() - changed) < 120, changed
    checked_at = prom_value(
        samples, "bbstatus_member_checked_timestamp_seconds", BB, r)
    assert checked_at is not None and abs(time.time() - checked_at) < 30, \
        checked_at
    # pending -> block: one change so far
    assert prom_value(samples, "bbstatus_member_decision_changes_total",
                      BB, s) == 1
    assert prom_value(samples, "bbstatus_member_hcinterval_seconds",
                      BB, r) == 0.2  # hcinterval=200ms
    # the hcmethod=GET member only has its rotation metric
    assert [n for n, labels, _ in samples if dict(labels)["member"] == g] \
        == [rot]

    first = prom_value(samples, "bbstatus_checks_total", BB, r)
    assert first is not None and first >= 1

    def grew():
        later = prom_value(scrape()[0], "bbstatus_checks_total", BB, r)
        return later if later > first else None
    wait_until(grew, deadline_for(0.2), interval=0.1,
               what=f"bbstatus_checks_total above {first}")


# --- 4. every child shows the checker's latest result -----------------------

@pytest.mark.parametrize("mpm", MPMS)
def test_all_children_show_latest_result(env, mpm):
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("b", "bitbucket", "RUNNING")])
    a, b = member_url(nodes.port("a")), member_url(nodes.port("b"))
    h = make(server_limit=4, start_servers=4, threads_per_child=5)
    h.start(site(
        (BB, [(nodes.port("a"), params("200ms")),
              (nodes.port("b"), params("200ms"))]),
        extra='LogFormat "%P %>s \\"%r\\"" pidlog\n'
              'CustomLog logs/pid_log pidlog\n'))
    pid_log = f"{h.root}/logs/pid_log"
    dl = deadline_for(0.2)
    wait_member(h, a, lambda m: m["decision"] == "route", dl,
                "a routed")
    wait_member(h, b, lambda m: m["decision"] == "route", dl,
                "b routed")
    wait_until(lambda: len(h.children()) >= 4, 10, what="4 children")

    off = h.log_offset()
    nodes.set("a", state="STOPPING")
    wait_member(h, a, lambda m: m["decision"] == "block", dl,
                "a blocked after STOPPING")
    change = h.wait_log(r"\[pid (\d+)(?::tid \d+)?\] BBS0010: balancer://bb "
                        rf"member {re.escape(a)}: route -> block", 5, off)
    checker_pid = int(change.group(1))

    with open(pid_log, "rb") as f:
        log_start = len(f.read())
    seen = []
    end = time.monotonic() + 15
    for i in range(60):
        assert time.monotonic() < end, f"only {i} requests within 15 s"
        doc = get_json(h, headers={"Connection": "close"})
        ma, mb = find_member(doc, BB, a), find_member(doc, BB, b)
        assert (ma["decision"], ma["state"], ma["in_rotation"]) == \
            ("block", "STOPPING", False), (i, ma)
        assert "HcFl" in ma["flags"].split(), (i, ma)
        assert ma["history"][0]["from"] == "route" and \
            ma["history"][0]["to"] == "block", (i, ma["history"])
        assert (mb["decision"], mb["state"]) == ("route", "RUNNING"), (i, mb)
        if seen:
            pa, pb = seen[-1]
            assert ma["checks"] >= pa["checks"], \
                f"response {i}: checks of a went back {pa['checks']} -> " \
                f"{ma['checks']}"
            assert mb["checks"] >= pb["checks"], \
                f"response {i}: checks of b went back {pb['checks']} -> " \
                f"{mb['checks']}"
            assert parse_ts(ma["checked_at"]) >= parse_ts(pa["checked_at"])
            assert ma["changed_at"] == pa["changed_at"], (pa, ma)
        seen.append((ma, mb))
        time.sleep(0.02)     # spread the requests over several checks
    assert seen[-1][0]["checks"] > seen[0][0]["checks"], \
        "checks of a did not move during the requests"

    def served_by():
        with open(pid_log, "rb") as f:
            f.seek(log_start)
            lines = f.read().decode().splitlines()
        pids = [int(line.split()[0]) for line in lines
                if '"GET /bbstatus?format=json HTTP/1.1"' in line]
        return pids if len(pids) >= 60 else None
    pids = wait_until(served_by, 5, what="60 access log lines")
    assert len(set(pids)) > 1, f"all requests served by one child {pids[0]}"
    others = [p for p in pids if p != checker_pid]
    assert others, (f"every request was served by the checker's child "
                    f"{checker_pid}")


# --- 5. methods and formats --------------------------------------------------

def test_methods_and_bad_format(env):
    h, nodes, urls = scenario(env, interval="1")
    for method in ("POST", "PUT", "DELETE"):
        status, _, body = h.get("/bbstatus?format=json", method=method,
                                body=b"{}" if method != "DELETE" else None)
        assert status == 405, (method, status, body[:200])

    for query, ctype in (("", "text/html"),
                         ("?format=json", "application/json"),
                         ("?format=prometheus", "text/plain")):
        raw = raw_http(h.port, (f"HEAD /bbstatus{query} HTTP/1.1\r\n"
                                f"Host: 127.0.0.1\r\n"
                                f"Connection: close\r\n\r\n").encode())
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, raw
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].split()[1] == "200", (query, lines[0])
        hdrs = {k.strip().lower(): v.strip() for k, v in
                (x.split(":", 1) for x in lines[1:])}
        assert hdrs.get("content-type", "").split(";")[0] == ctype, \
            (query, hdrs)
        assert rest == b"", f"HEAD {query} sent a body: {rest[:200]!r}"

    status, _, body = h.get("/bbstatus?format=bogus")
    assert status == 400, (status, body[:200])
    status, _, body = h.get("/bbstatus?format=bogus",
                            headers={"Accept": "application/json"})
    assert status == 400, (status, body[:200])


def test_405_names_allowed_methods(env):
    """A 405 must say in Allow which methods the resource supports."""
    h, nodes, urls = scenario(env, interval="1")
    status, hdrs, _ = h.get("/bbstatus", method="POST", body=b"x")
    assert status == 405
    allow = [m.strip().upper() for m in hdrs.get("Allow", "").split(",")]
    assert "GET" in allow, f"Allow: {hdrs.get('Allow')!r}"


# --- 6. server-status -------------------------------------------------------

def test_server_status_section(env):
    h, nodes, urls = scenario(env, interval="200ms")
    wait_scenario(h, urls, deadline_for(0.2))
    r, s, g = urls["r"], urls["s"], urls["g"]

    status, hdrs, body = h.get("/server-status")
    assert status == 200
    page = body.decode("utf-8", "replace")
    sect = page.find("mod_bbstatus")
    assert sect >= 0, page
    section = page[sect:]
    assert r in section and s in section, section
    assert g not in section, "hcmethod=GET member listed in the section"
    assert re.search(r"\b2 BBSTATUS members\b", section), section

    before = get_json(h)
    status, hdrs, body = h.get("/server-status?auto")
    after = get_json(h)
    assert status == 200
    text = body.decode("utf-8", "replace")
    counts = re.findall(r"^BBStatusMembers: (\d+)$", text, re.M)
    assert counts == ["2"], text
    lines = [line for line in text.splitlines()
             if line.startswith("BBStatusMember:")]
    assert len(lines) == 2, text
    parsed = {}
    for line in lines:
        m = AUTO_MEMBER_RE.match(line)
        assert m, f"BBStatusMember line does not parse: {line!r}"
        (bal, name, decision, rot, sticky, state, code, checks, failures,
         latency, reason, vhost) = m.groups()
        assert bal == BB, line
        assert vhost == "127.0.0.1", line
        assert sticky == "-", line
        parsed[name] = dict(decision=decision, in_rotation=int(rot),
                            state=state, http_status=int(code),
                            checks=int(checks), failures=int(failures),
                            latency_ms=float(latency), reason=reason)
    assert sorted(parsed) == sorted([r, s]), parsed
    assert [AUTO_MEMBER_RE.match(x).group(2) for x in lines] == [r, s]

    pr, ps = parsed[r], parsed[s]
    assert (pr["decision"], pr["in_rotation"], pr["state"],
            pr["http_status"], pr["failures"]) == \
        ("route", 1, "RUNNING", 200, 0), pr
    assert (ps["decision"], ps["in_rotation"], ps["state"],
            ps["http_status"], ps["failures"]) == \
        ("block", 0, "STOPPING", 503, 0), ps
    assert "BBStatusRoute" in pr["reason"], pr
    assert "STOPPING" in ps["reason"] and "BBStatusRoute" in ps["reason"], ps
    for name, p in parsed.items():
        lo = find_member(before, BB, name)["checks"]
        hi = find_member(after, BB, name)["checks"]
        assert 1 <= lo <= p["checks"] <= hi, (name, lo, p, hi)
        assert 0 <= p["latency_ms"] < 5000, p


# --- 7. history -------------------------------------------------------------

def test_history_of_changes(env):
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("b", "bitbucket", "RUNNING")])
    a = member_url(nodes.port("a"))
    h = make()
    h.start(site((BB, [(nodes.port("a"), params("200ms")),
                         (nodes.port("b"), params("200ms"))])))
    dl = deadline_for(0.2)
    wait_member(h, a, lambda m: m["decision"] == "route", dl, "routed")
    nodes.set("a", state="STOPPING")
    wait_member(h, a, lambda m: m["decision"] == "block", dl, "blocked")
    nodes.set("a", state="RUNNING")
    m = wait_member(h, a, lambda m: m["decision"] == "route", dl,
                       "routed again")
    check_member_types(m)
    hist = m["history"]
    assert [(e["from"], e["to"]) for e in hist] == [
        ("block", "route"), ("route", "block"), ("pending", "route")], hist
    assert [e["state"] for e in hist] == ["RUNNING", "STOPPING", "RUNNING"]
    assert "STOPPING" in hist[1]["reason"], hist
    times = [parse_ts(e["at"]) for e in reversed(hist)]
    assert times == sorted(times) and len(set(times)) == 3, hist
    assert m["changed_at"] == hist[0]["at"], (m["changed_at"], hist)
    assert parse_ts(m["checked_at"]) >= parse_ts(m["changed_at"])
    assert m["state"] == "RUNNING" and m["in_rotation"] is True, m


# --- 8. the handler never probes --------------------------------------------

def test_handler_starts_no_probe(env):
    start_nodes, make = env
    # first check at once, the next 15..30 s later
    port = free_port()
    nodes = start_nodes([("a", "bitbucket", "RUNNING", port)])
    a = member_url(port)
    h = make()
    h.start(site((BB, [(port, "hcmethod=BBSTATUS hcinterval=30 "
                                "hcpasses=1 hcfails=1")])))
    wait_member(h, a, lambda m: m["checks"] >= 1, 1.5 + 6,
                "the first check")
    count = nodes.node("a")["counts"]["status"]
    assert count == 1, nodes.node("a")["counts"]

    # 20 handler requests in every format, spread over more than a second
    # (longer than any re-probe pause), then the status pages
    paths = ["/bbstatus?format=json", "/bbstatus",
             "/bbstatus?format=prometheus", "/bbstatus?format=html"]
    for i in range(20):
        path = paths[i % len(paths)]
        status, _, _ = h.get(path, headers={"Connection": "close"})
        assert status == 200, path
        time.sleep(0.06)
    for path in ("/server-status", "/server-status?auto"):
        assert h.get(path)[0] == 200, path
    # a probe the requests asked for would arrive within a few ticks
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        assert nodes.node("a")["counts"]["status"] == count, \
            nodes.node("a")["counts"]
        time.sleep(0.1)
    doc = get_json(h)
    assert find_member(doc, BB, a)["checks"] == 1, find_member(doc, BB, a)
    assert nodes.node("a")["counts"]["status"] == count


# --- one view: every output says the same -------------------------------

def _five_outputs(h, url):
    """(decision, reason) of member url as JSON, the page, Prometheus,
    server-status and server-status?auto each give them."""
    out = {}
    m = find_member(get_json(h), BB, url)
    out["json"] = (m["decision"], m["reason"])
    _, _, page = h.get("/bbstatus")
    page = page.decode()
    row = re.search(r'<tr class="m" data-member="' + re.escape(url)
                    + r'">.*?<span class="d \w+">(\w+)</span>.*?'
                    r'<tr class="r"><td colspan="11">([^<]*)', page, re.S)
    # the history follows the reason in its cell, after a " · "
    out["page"] = (row.group(1),
                   re.sub(r"\s*\u00b7\s*$", "", html.unescape(row.group(2))))
    _, _, prom = h.get("/bbstatus?format=prometheus")
    samples, _, _ = parse_prometheus(prom.decode())
    decisions = [dict(lb)["decision"] for n, lb, v in samples
                 if n == "bbstatus_member_decision"
                 and dict(lb)["member"] == url and v == 1]
    out["prometheus"] = (decisions[0], None)
    _, _, status = h.get("/server-status")
    cells = re.search(r"<tr><td>[^<]*</td><td>[^<]*</td><td>"
                      + re.escape(url) + r"</td><td>(\w+)</td>"
                      r"(?:<td>[^<]*</td>){5}<td>([^<]*)</td></tr>",
                      status.decode())
    out["server-status"] = (cells.group(1), html.unescape(cells.group(2)))
    _, _, auto = h.get("/server-status?auto")
    line = [x for x in auto.decode().splitlines()
            if x.startswith(f"BBStatusMember: {BB} {url} ")][0]
    m = AUTO_MEMBER_RE.match(line)
    out["auto"] = (m.group(3), urllib.parse.unquote(m.group(11)))
    return out


def _same_everywhere(out):
    decisions = {d for d, _ in out.values()}
    reasons = {r for _, r in out.values() if r is not None}
    assert len(decisions) == 1 and len(reasons) == 1, out
    return decisions.pop(), reasons.pop()


def test_unchecked_member_reads_the_same_in_every_output(env):
    start_nodes, make = env
    # Stopped by the administrator: not checked, as before a first check
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("b", "bitbucket", "RUNNING")])
    a, b = murl(nodes, "a"), murl(nodes, "b")
    h = make()
    h.start(config([(a, params("20", extra="status=+S")), (b, params("20"))]))
    decision, reason = _same_everywhere(_five_outputs(h, a))
    assert decision == "pending", (decision, reason)


def test_member_held_out_by_hcpasses_names_the_passes_needed(env):
    """hcpasses=3: a node back from STOPPING that says STARTING passes a
    check and stays out; its reason says how many passes are still
    needed, not only what the check said, and every output agrees."""
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "STOPPING"),
                         ("b", "bitbucket", "RUNNING")])
    a, b = murl(nodes, "a"), murl(nodes, "b")
    h = make()
    h.start(config([(a, params("3", passes=3)), (b, params("3", passes=3))]))
    wait_member(h, a, lambda m: m.get("decision") == "block", 8, "a out")
    nodes.set("a", state="STARTING")
    m = wait_member(h, a, lambda m: m.get("state") == "STARTING", 8,
                    "a checked as STARTING")
    assert m["decision"] == "block", brief(m)
    want = ("out until hcpasses=3 checks in a row pass, 1 so far; last "
            "check: state STARTING (HTTP 503) is in BBStatusStandby")
    assert m["reason"].startswith(want), m["reason"]
    # the five reads take milliseconds, the next check is seconds away;
    # should one fall between them, read again
    for _ in range(3):
        before = find_member(get_json(h), BB, a)["checks"]
        out = _five_outputs(h, a)
        if find_member(get_json(h), BB, a)["checks"] == before:
            break
    decision, reason = _same_everywhere(out)
    assert decision == "block" and reason.startswith(
        "out until hcpasses=3 checks in a row pass, "), out


def _header_strings(prefix):
    """The strings include/bbs_keys.h defines under BBS_<prefix>*."""
    with open(os.path.join(REPO, "include", "bbs_keys.h")) as f:
        return set(re.findall(rf'^#define BBS_{prefix}\w+ "([^"]*)"$',
                              f.read(), re.M))


def _json_keys(doc, out=None):
    out = set() if out is None else out
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.add(k)
            _json_keys(v, out)
    elif isinstance(doc, list):
        for v in doc:
            _json_keys(v, out)
    return out


def test_json_keys_and_decisions_are_the_headers(env):
    """The module writes its JSON with the names of include/bbs_keys.h;
    this suite reads them from there too, so neither drifts."""
    h, nodes, urls = scenario(env)
    wait_scenario(h, {"r": urls["r"], "s": urls["s"]}, deadline_for(1))
    doc = get_json(h)
    keys = _header_strings("KEY_")
    assert _json_keys(doc) <= keys, sorted(_json_keys(doc) - keys)
    assert DECISIONS == _header_strings("DECISION_"), DECISIONS
