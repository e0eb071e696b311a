"""Failed requests: the early re-probe and the retry of what a leaving
node answered (BBStatusRetry), against a real apache2 and simulated
Atlassian nodes.

Times are compared on one clock: the simulator's request log and
``status_times`` are ``time.time()`` on the same machine. Measured values
are printed (run with ``-s``) and named in every assertion message.
"""

import gzip
import re
import socket
import statistics
import time

import pytest

from httpd import DIAG, MPMS, SHAPES, free_port, wait_until
from bbs import (BB, FAILING_RUNNING, balancer, brief, config, diag, is_,
                 ms, murl, params, post_balancer,
                 wait_members)


# --- 1. a failed request wakes the checker at once ------------------------

@pytest.mark.parametrize("mpm", MPMS)
def test_failed_request_probed_within_milliseconds(env, mpm):
    start_nodes, make = env
    # the first check comes at once, the next 5..10 s later: every probe
    # measured here is an out-of-turn one
    port = free_port()
    nodes = start_nodes([("a", "bitbucket", "RUNNING", port)])
    a = murl(nodes, "a")
    # every page fails with 503 while /status says RUNNING: a stays in
    nodes.set("a", mode="custom", scope="all", custom=FAILING_RUNNING)
    h = make()
    h.start(config([(a, params("10"))]))
    wait_members(h, {a: is_("route", "RUNNING")}, 6, "a's first check")
    delays = []
    for i in range(6):
        # more than BBStatusReprobeInterval (250 ms) since the last probe
        time.sleep(0.35)
        n_before = len(nodes.requests("a"))
        s, hdrs, _ = h.get(f"/app/w{i}")
        assert s == 503 and hdrs.get("x-node") == "a", (s, hdrs)
        t_req = nodes.requests("a")[n_before][0]

        def probed():
            later = [t for t in nodes.node("a")["status_times"] if t > t_req]
            return later[0] if later else None
        t_probe = wait_until(probed, 3.0, interval=0.01,
                             what=f"a probed after request {i}")
        delays.append(t_probe - t_req)
    shown = [ms(d) for d in delays]
    print(f"\n{mpm}: failed request -> probe at the node: {shown} ms")
    m = diag(h)[a]
    assert m["decision"] == "route", brief(m)
    # the watchdog tick alone gives 0..100 ms (50 ms on average)
    assert statistics.median(delays) < 0.015, shown
    assert max(delays) < 0.050, shown


# --- 2. BBStatusRetry ------------------------------------------------------

def start_two(env, states=("RUNNING", "RUNNING"), section="", extra="",
              name=None):
    """Nodes a and b, both members of bb with hcinterval=10 (no scheduled
    check falls into a test), after their first checks."""
    start_nodes, make = env
    nodes = start_nodes(early("ab", "bitbucket", states))
    a, b = murl(nodes, "a"), murl(nodes, "b")
    h = make(name)
    h.start(config([(a, params("10", extra=extra)),
                    (b, params("10", extra=extra))], section=section))
    wait_members(h, {u: (lambda m: (m.get("checks") or 0) >= 1)
                     for u in (a, b)}, 8, "first checks")
    return nodes, h, a, b


def early(names, flavor, states):
    """Node specs of members whose first checks come at once and the next
    5..10 s later (hcinterval=10): no scheduled check falls into a
    test."""
    return [(n, flavor, st, free_port()) for n, st in zip(names, states)]


def since(nodes, name, t):
    return [e for e in nodes.requests(name) if e[0] >= t]


@pytest.mark.parametrize("mpm", MPMS)
@pytest.mark.parametrize("shape", SHAPES)
def test_get_answered_503_by_stopping_node_is_retried(env, shape, mpm):
    nodes, h, a, b = start_two(env)
    t_flip = time.time()
    nodes.set("a", state="STOPPING")
    answers = [h.get(f"/app/g{i}") for i in range(6)]
    got = [(s, hd.get("x-node")) for s, hd, _ in answers]
    at_a = since(nodes, "a", t_flip)
    print(f"\nclient: {got}; a after STOPPING: {at_a}")
    assert at_a and all(e[2] == 503 for e in at_a), at_a
    assert got == [(200, "b")] * 6, got
    for s, hd, body in answers:
        assert body.startswith(b"node=b path=/app/g"), body


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize("shape", SHAPES)
def test_unsafe_method_is_not_retried(env, shape, method):
    nodes, h, a, b = start_two(env)
    t_flip = time.time()
    nodes.set("a", state="STOPPING")
    got = []
    for i in range(6):
        s, hd, body = h.get(f"/app/p{i}", method=method,
                            body=b"x=1" if method == "POST" else None)
        got.append((s, hd.get("x-node")))
        if hd.get("x-node") == "a":
            break
    at_a, at_b = since(nodes, "a", t_flip), since(nodes, "b", t_flip)
    print(f"\n{method}: client {got}; a {at_a}; b {at_b}")
    assert got[-1] == (503, "a"), got
    assert len(at_a) == 1 and at_a[0][2] == 503, at_a
    # the failed request went nowhere else
    assert len(at_b) == len(got) - 1, (got, at_b)


def raw_get(port, path):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n"
                  f"Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


def without_date(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = [x for x in head.split(b"\r\n")
             if not x.lower().startswith(b"date:")]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@pytest.mark.parametrize("only", [True, False], ids=["only", "both"])
@pytest.mark.parametrize("shape", SHAPES)
def test_maintenance_page_reaches_client_unchanged(env, shape, only):
    """A MAINTENANCE node stays in rotation: its 503 page goes to the
    client as it does with BBStatusRetry off, headers and body. "only": b
    is stopped, so a is the only choice; "both": both nodes are in
    MAINTENANCE, so every 503 is held and probed before it goes on."""
    start_nodes, make = env
    nodes = start_nodes(early("ab", "bitbucket", [
        "MAINTENANCE", "STOPPED" if only else "MAINTENANCE"]))
    a, b = murl(nodes, "a"), murl(nodes, "b")
    members = [(a, params("10")), (b, params("10"))]
    on = make("on")
    on.start(config(members))
    off = make("off")
    off.start(config(members, section="BBStatusRetry off"))
    for h in (on, off):
        wait_members(h, {u: (lambda m: (m.get("checks") or 0) >= 1)
                         for u in (a, b)}, 8, "first checks")
    for i in range(4):
        path = f"/app/m{i}"
        got_on, got_off = raw_get(on.port, path), raw_get(off.port, path)
        assert got_on.startswith(b"HTTP/1.1 503 "), got_on[:200]
        assert without_date(got_on) == without_date(got_off), \
            (got_on, got_off)
        assert b"\r\nX-Node: " in got_on and b"state=MAINTENANCE\n" in got_on
    if only:
        assert not nodes.requests("b")


@pytest.mark.parametrize("shape", SHAPES)
def test_failing_running_node_is_not_retried(env, shape):
    """Every page of both nodes fails while /status says RUNNING: the
    probe keeps each member, so each request reaches one node only and the
    client gets that node's 503 page."""
    nodes, h, a, b = start_two(env)
    for n in "ab":
        nodes.set(n, mode="custom", scope="all", custom=FAILING_RUNNING)
    t0 = time.time()
    answers = [h.get(f"/app/f{i}") for i in range(8)]
    hits = len(since(nodes, "a", t0)) + len(since(nodes, "b", t0))
    print(f"\nclient {[(s, hd.get('x-node')) for s, hd, _ in answers]}; "
          f"node hits {hits}")
    for s, hd, body in answers:
        assert s == 503 and hd.get("x-node") in ("a", "b"), (s, hd)
        assert body == FAILING_RUNNING["body"].encode(), body
    assert hits == len(answers), hits


@pytest.mark.parametrize("shape", SHAPES)
def test_at_most_one_retry(env, shape):
    """Three members that all answer 503 and say STOPPING, kept in rotation
    (BBStatusFastBlock off, hcfails high, no early probes, retry=0): each
    GET is retried once, never a third time, and the client gets the
    second member's 503."""
    start_nodes, make = env
    nodes = start_nodes(early("abc", "bitbucket", ["STOPPING"] * 3))
    urls = [murl(nodes, n) for n in "abc"]
    h = make()
    p = ("hcmethod=BBSTATUS hcinterval=10 hcpasses=1 hcfails=1000 retry=0")
    h.start(config([(u, p) for u in urls],
                   section="BBStatusFastBlock off\nBBStatusReprobeInterval 0"))
    wait_members(h, {u: (lambda m: (m.get("checks") or 0) >= 1)
                     for u in urls}, 8, "first checks")
    t0 = time.time()
    answers = [h.get(f"/app/l{i}") for i in range(6)]
    hits = sum(len(since(nodes, n, t0)) for n in "abc")
    print(f"\nclient {[(s, hd.get('x-node')) for s, hd, _ in answers]}; "
          f"node hits {hits}")
    for s, hd, body in answers:
        assert s == 503 and body.startswith(b"node="), (s, body)
        assert body.startswith(f"node={hd.get('x-node')} ".encode()), body
    assert hits == 2 * len(answers), hits


@pytest.mark.parametrize("shape", SHAPES)
def test_retry_off(env, shape):
    nodes, h, a, b = start_two(env, section="BBStatusRetry off")
    t_flip = time.time()
    nodes.set("a", state="STOPPING")
    got = []
    for i in range(6):
        s, hd, _ = h.get(f"/app/o{i}")
        got.append((s, hd.get("x-node")))
        if hd.get("x-node") == "a":
            break
    print(f"\nclient {got}")
    assert got[-1] == (503, "a"), got
    assert len(since(nodes, "a", t_flip)) == 1


# --- 3. where the balancer lives: live settings, sticky users -------------

def start_routed(env, section=""):
    """start_two with routes a and b and a ROUTEID sticky cookie, as the
    shipped examples configure a balancer."""
    start_nodes, make = env
    nodes = start_nodes(early("ab", "bitbucket", ("RUNNING", "RUNNING")))
    a, b = murl(nodes, "a"), murl(nodes, "b")
    h = make()
    h.start(config([(a, params("10", extra="route=a")),
                    (b, params("10", extra="route=b"))],
                   section="ProxySet stickysession=ROUTEID\n" + section))
    wait_members(h, {u: (lambda m: (m.get("checks") or 0) >= 1)
                     for u in (a, b)}, 8, "first checks")
    return nodes, h, a, b


PINNED_TO_A = {"Cookie": "ROUTEID=.a"}


@pytest.mark.parametrize("mpm", MPMS)
@pytest.mark.parametrize("shape", SHAPES)
def test_sticky_get_pinned_to_stopping_node_is_retried(env, shape, mpm):
    """A user whose route names a node that just said STOPPING gets the
    other node's answer, and only the first request reaches the leaving
    node."""
    nodes, h, a, b = start_routed(env)
    t_flip = time.time()
    nodes.set("a", state="STOPPING")
    answers = [h.get(f"/app/s{i}", headers=PINNED_TO_A) for i in range(4)]
    got = [(s, hd.get("x-node")) for s, hd, _ in answers]
    at_a = since(nodes, "a", t_flip)
    print(f"\nclient {got}; a after STOPPING: {at_a}")
    assert got == [(200, "b")] * 4, got
    assert len(at_a) == 1 and at_a[0][2] == 503, at_a


@pytest.mark.parametrize("shape", SHAPES)
def test_manager_maxattempts_zero_applies_to_retry(env, shape):
    """maxattempts set to 0 in balancer-manager: no failover is left, so
    the member's own 503 reaches the client (not httpd's error page)."""
    nodes, h, a, b = start_routed(env, section="ProxySet maxattempts=1")
    post_balancer(h, BB, {"b_max": "0"})
    nodes.set("a", state="STOPPING")
    s, hd, body = h.get("/app/x", headers=PINNED_TO_A)
    print(f"\nclient {s} {hd.get('x-node')} {body[:60]!r}")
    assert (s, hd.get("x-node")) == (503, "a"), (s, hd, body)
    assert body.startswith(b"node=a "), body


@pytest.mark.parametrize("shape", SHAPES)
def test_manager_nofailover_applies_to_retry(env, shape):
    """nofailover=On set in balancer-manager: a sticky user stays on its
    node, and gets that node's own answer."""
    nodes, h, a, b = start_routed(env, section="ProxySet maxattempts=1")
    post_balancer(h, BB, {"b_sforce": "1"})
    t_flip = time.time()
    nodes.set("a", state="STOPPING")
    s, hd, body = h.get("/app/n", headers=PINNED_TO_A)
    print(f"\nclient {s} {hd.get('x-node')} {body[:60]!r}")
    assert (s, hd.get("x-node")) == (503, "a"), (s, hd, body)
    assert body.startswith(b"node=a "), body
    assert not since(nodes, "b", t_flip)


# --- 4. a retried answer is as good as a first one ------------------------

PAGE = "<html><body>\n" + "<p>a row of a Bitbucket page</p>\n" * 100 \
    + "</body></html>\n"


def pages(nodes, name, status, state=None):
    """Node ``name`` answers its pages with PAGE (HTML, large enough for
    mod_deflate) and ``status``; /status stays as its state says."""
    fields = {"mode": "custom", "scope": "pages",
              "custom": {"status": status, "content_type": "text/html",
                         "body": PAGE}}
    if state:
        fields["state"] = state
    nodes.set(name, **fields)


def without(headers, *names):
    return {k: v for k, v in headers.items() if k not in names}


@pytest.mark.parametrize("deflate", ["SetOutputFilter DEFLATE",
                                     "AddOutputFilterByType DEFLATE "
                                     "text/html"], ids=["set", "bytype"])
@pytest.mark.parametrize("shape", SHAPES)
def test_retried_answer_is_compressed_like_a_first_one(env, shape, deflate):
    """mod_deflate in front of the balancer: the answer that replaces a
    leaving node's dropped 503 is compressed as the same member's answer is
    without a retry (headers, and the bytes after gunzip). The filters
    ahead of the retry's must never have seen the dropped answer."""
    start_nodes, make = env
    nodes = start_nodes(early("ab", "bitbucket", ("RUNNING", "RUNNING")))
    a, b = murl(nodes, "a"), murl(nodes, "b")
    h = make(extra_modules=("deflate", "filter"))
    h.start(config([(a, params("10")), (b, params("10"))], head=deflate))
    wait_members(h, {u: (lambda m: (m.get("checks") or 0) >= 1)
                     for u in (a, b)}, 8, "first checks")
    pages(nodes, "b", 200)
    t_flip = time.time()
    pages(nodes, "a", 503, state="STOPPING")
    gz = {"Accept-Encoding": "gzip"}
    # round robin: of two requests one lands on a and is retried on b
    answers = [h.get("/app/page", headers=gz) for _ in range(2)]
    at_a = since(nodes, "a", t_flip)
    assert len(at_a) == 1 and at_a[0][2] == 503, at_a
    t0 = time.time()
    first = h.get("/app/page", headers=gz)     # a is out now: b at once
    assert not since(nodes, "a", t0)
    print(f"\n{[(s, dict(hd)) for s, hd, _ in answers]}\nfirst: {first[1]}")
    for s, hd, body in answers + [first]:
        assert s == 200 and hd.get("x-node") == "b", (s, hd)
        assert hd.get("content-encoding") == "gzip", hd
        assert "Accept-Encoding" in hd.get("vary", ""), hd
        assert gzip.decompress(body).decode() == PAGE
        assert without(hd, "date") == without(first[1], "date"), \
            (hd, first[1])


PROBE_US = re.compile(r"BBS0090: .* \((\d+) us\): retried on another member")


def test_retried_request_takes_little_more_than_its_probe(env):
    """What a retry adds to a request is the probe and a second exchange
    on loopback: a stall (a delayed ACK, a sleep) would show as tens of
    milliseconds. Each retried request's time (access log, %D) is compared
    with its probe's latency (BBS0090); the median difference must stay
    under 20 ms (a few ms when the machine is idle; the stall this guards
    against costs 40 ms or more)."""
    start_nodes, make = env
    nodes = start_nodes(early("ab", "bitbucket", ("RUNNING", "RUNNING")))
    a, b = murl(nodes, "a"), murl(nodes, "b")
    h = make(module_loglevel="debug")
    h.start(config([(a, params("1")), (b, params("1"))]))
    for i in range(6):
        nodes.set("a", state="RUNNING")
        wait_members(h, {u: lambda m: m.get("decision") == "route"
                         and m.get("in_rotation") for u in (a, b)},
                     8, f"a back in rotation ({i})")
        t_flip = time.time()
        nodes.set("a", state="STOPPING")
        # round robin: one of two requests lands on a
        for j in range(2):
            s, hd, _ = h.get(f"/app/t{i}-{j}")
            assert (s, hd.get("x-node")) == (200, "b"), (s, hd)
        assert len(since(nodes, "a", t_flip)) == 1
    probes = wait_until(lambda: (lambda p: p if len(p) == 6 else None)(
        [int(x) for x in PROBE_US.findall(h.error_log())]), 5,
        what="six BBS0090 lines")
    retried = []
    for line in h.access_log().splitlines():
        m = re.match(r'\S+ 200 (\d+) "GET /app/t\d+-\d+ ', line)
        if m:
            retried.append(int(m.group(1)))
    # the retried request is the slower one of each pair: it holds the
    # probe's time
    pairs = [max(retried[k:k + 2]) for k in range(0, len(retried), 2)]
    diff_ms = [(t - p) / 1000.0 for t, p in zip(pairs, probes)]
    print(f"\nretried requests {pairs} us, probes {probes} us, "
          f"difference {diff_ms} ms")
    assert len(pairs) == 6, retried
    assert statistics.median(diff_ms) < 20.0, diff_ms


def test_retry_for_a_balancer_a_vhost_inherits(env):
    """A balancer defined in the main server and used by a virtual host's
    ProxyPass (its copy shares the members): retried there too."""
    start_nodes, make = env
    nodes = start_nodes(early("ab", "bitbucket", ("RUNNING", "RUNNING")))
    a, b = murl(nodes, "a"), murl(nodes, "b")
    h = make()
    h.start(balancer(BB, [(a, params("10")), (b, params("10"))])
            + "<VirtualHost 127.0.0.1:@PORT@>\n"
              "    ServerName site.test\n"
            + DIAG + f"    ProxyPass / {BB}/\n</VirtualHost>\n")
    wait_members(h, {u: (lambda m: (m.get("checks") or 0) >= 1)
                     for u in (a, b)}, 8, "first checks")
    t_flip = time.time()
    nodes.set("a", state="STOPPING")
    got = [(s, hd.get("x-node")) for s, hd, _ in
           (h.get(f"/app/i{i}") for i in range(4))]
    at_a = since(nodes, "a", t_flip)
    print(f"\nclient {got}; a after STOPPING: {at_a}")
    assert got == [(200, "b")] * 4, got
    assert len(at_a) == 1 and at_a[0][2] == 503, at_a
