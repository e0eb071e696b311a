"""Tests of the simulated Atlassian nodes (simnode.py)."""

import gzip
import http.client
import json
import os
import socket
import time

import pytest

from simclient import SimNodes, SimNodesError

HOST = "127.0.0.1"
JSON = "application/json;charset=UTF-8"

BITBUCKET = {"STARTING": 503, "FIRST_RUN": 200, "RUNNING": 200,
             "MAINTENANCE": 200, "STOPPING": 503, "ERROR": 500}
JIRA = {"STARTING": 200, "STOPPING": 200, "FIRST_RUN": 200, "RUNNING": 200,
        "MAINTENANCE": 503, "ERROR": 500}
# Confluence and Crowd have no MAINTENANCE; only RUNNING's 200 is
# documented, the others follow Bitbucket
CONFLUENCE = {"STARTING": 503, "FIRST_RUN": 200, "RUNNING": 200,
              "STOPPING": 503, "ERROR": 500}
BAMBOO = {"RUNNING": 200, "PAUSED": 200}
BAMBOO_STATUS = "/rest/api/latest/status"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    nodes = SimNodes.start(
        nodes=[("bb", "bitbucket", "RUNNING"), ("jr", "jira", "RUNNING"),
               ("h", "bitbucket", "RUNNING"), ("ka", "bitbucket", "RUNNING"),
               ("st", "bitbucket", "RUNNING"), ("off", "jira", "STOPPED"),
               ("c", "bitbucket", "RUNNING"), ("sc", "bitbucket", "RUNNING")],
        tmpdir=tmp_path_factory.mktemp("simnode"))
    try:
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
def hostile(sim):
    """The node "h", put back to normal after each test."""
    yield "h"
    sim.set("h", mode="normal", scope="status", state="RUNNING", flavor="bitbucket")


# -- raw HTTP helpers ---------------------------------------------------------

def connect(port, host=HOST, timeout=3.0):
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def request_bytes(path="/status", method="GET", version="HTTP/1.1",
                  headers=(), body=b""):
    lines = [f"{method} {path} {version}", "Host: node"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def recv_until_close(sock, limit=1 << 24, deadline=5.0):
    """Everything up to EOF (bounded in size and time)."""
    data = b""
    end = time.monotonic() + deadline
    while len(data) < limit and time.monotonic() < end:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def split_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return code, headers, body


class Reader:
    """Reads Content-Length framed responses off one keep-alive socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def response(self, head_request=False):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed before the response head"
            self.buf += chunk
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        code, headers, _ = split_response(head + b"\r\n\r\n")
        length = 0 if head_request else int(headers.get("content-length", 0))
        while len(rest) < length:
            chunk = self.sock.recv(65536)
            assert chunk, "connection closed inside the body"
            rest += chunk
        self.buf = rest[length:]
        return code, headers, rest[:length]


def get(port, path="/status", method="GET", headers=(), body=b"", host=HOST):
    with connect(port, host) as sock:
        sock.sendall(request_bytes(path, method, headers=list(headers) +
                                   [("Connection", "close")], body=body))
        return split_response(recv_until_close(sock))


def wait_until(predicate, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def refused(port, host=HOST):
    try:
        socket.create_connection((host, port), timeout=1.0).close()
    except ConnectionRefusedError:
        return True
    return False


# -- reference answers --------------------------------------------------------

@pytest.mark.parametrize("flavor,codes,path", [
    ("bitbucket", BITBUCKET, "/status"), ("jira", JIRA, "/status"),
    ("confluence", CONFLUENCE, "/status"), ("crowd", CONFLUENCE, "/status"),
    ("bamboo", BAMBOO, BAMBOO_STATUS)])
def test_status_of_every_state(sim, flavor, codes, path):
    port = sim.port("bb")
    try:
        for state, expected in codes.items():
            record = sim.set("bb", flavor=flavor, state=state)
            assert (record["flavor"], record["state"]) == (flavor, state)
            assert record["status_path"] == path
            code, headers, body = get(port, path)
            assert code == expected, state
            assert body == b'{"state":"%s"}' % state.encode()
            assert headers["content-type"] == JSON
            assert headers["content-length"] == str(len(body))
            assert headers["x-node"] == "bb"
    finally:
        record = sim.set("bb", flavor="bitbucket", state="RUNNING")
        assert record["status_path"] == "/status"


def test_bamboo_status_path_and_paused_ui(sim):
    port = sim.port("bb")
    try:
        sim.set("bb", flavor="bamboo", state="PAUSED")
        assert get(port, BAMBOO_STATUS)[:3:2] == (200, b'{"state":"PAUSED"}')
        # /status is a page like any other on Bamboo, and a paused
        # server serves its UI
        code, headers, body = get(port, "/status")
        assert code == 200 and headers["content-type"].startswith("text/plain")
        assert get(port, "/browse/PROJ-PLAN")[0] == 200
        # a status path set by hand stays when the flavor changes
        sim.set("bb", status_path="/bamboo" + BAMBOO_STATUS)
        assert sim.set("bb", flavor="jira")["status_path"] == \
            "/bamboo" + BAMBOO_STATUS
    finally:
        sim.set("bb", flavor="bitbucket", state="RUNNING",
                status_path="/status")


def test_confluence_synchrony_heartbeat(sim):
    port = sim.port("bb")
    try:
        record = sim.set("bb", flavor="confluence", state="RUNNING")
        assert record["synchrony"] is True
        code, headers, body = get(port, "/synchrony/heartbeat")
        assert (code, body) == (200, b"OK")
        assert headers["content-type"].startswith("text/plain")
        assert get(port, "/synchrony/v1/data")[0] == 200
        # Synchrony is a process of its own: down, its paths answer 503
        # while Confluence itself runs on
        assert sim.set("bb", synchrony=False)["synchrony"] is False
        code, _, body = get(port, "/synchrony/heartbeat")
        assert code == 503 and body != b"OK"
        assert get(port, "/synchrony/v1/data")[0] == 503
        assert get(port, "/status")[:3:2] == (200, b'{"state":"RUNNING"}')
        assert get(port, "/display/SPACE/Page")[0] == 200
        sim.set("bb", synchrony=True, state="STARTING")
        # the heartbeat follows Synchrony, not the node's state
        assert get(port, "/synchrony/heartbeat")[:3:2] == (200, b"OK")
        assert get(port, "/status")[0] == 503
        # only Confluence has Synchrony
        sim.set("bb", flavor="bitbucket", state="RUNNING")
        code, _, body = get(port, "/synchrony/heartbeat")
        assert code == 200 and body.startswith(b"node=bb ")
        with pytest.raises(SimNodesError, match="400"):
            sim.set("bb", synchrony="down")
    finally:
        sim.set("bb", flavor="bitbucket", state="RUNNING", synchrony=True)


def test_status_line_is_tomcat_style(sim):
    with connect(sim.port("bb")) as sock:
        sock.sendall(request_bytes(headers=[("Connection", "close")]))
        assert recv_until_close(sock).startswith(b"HTTP/1.1 200 \r\n")


@pytest.mark.parametrize("flavor", ["bitbucket", "jira"])
@pytest.mark.parametrize("state", ["<script>alert(1)</script>", "S" * 10_000,
                                   'quo"te\\back\nnl', "Zustand-\u00e4\u2603",
                                   "running"])
def test_other_state_strings(sim, flavor, state):
    try:
        sim.set("jr", flavor=flavor, state=state)
        code, headers, body = get(sim.port("jr"))
        assert code == 200
        assert headers["content-type"] == JSON
        assert json.loads(body) == {"state": state}
        assert body == json.dumps({"state": state}, separators=(",", ":"),
                                  ensure_ascii=False).encode()
    finally:
        sim.set("jr", flavor="jira", state="RUNNING")


@pytest.mark.parametrize("state,code", [("RUNNING", 200), ("FIRST_RUN", 200),
                                        ("STARTING", 503), ("STOPPING", 503),
                                        ("ERROR", 500), ("SOMETHING", 200)])
def test_user_traffic(sim, state, code):
    try:
        sim.set("ka", state=state)
        got, headers, body = get(sim.port("ka"), "/projects/X/repos?limit=5")
        assert got == code
        assert headers["x-node"] == "ka"
        assert headers["content-type"].startswith("text/plain")
        assert body == f"node=ka path=/projects/X/repos state={state}\n".encode()
    finally:
        sim.set("ka", state="RUNNING")


def test_maintenance_user_traffic(sim):
    port = sim.port("ka")
    try:
        sim.set("ka", state="MAINTENANCE")
        token = [("X-Atlassian-Maintenance-Token", "s3cr3t-token")]
        assert get(port, "/mvc/maintenance?_=1", headers=token)[0] == 200
        assert get(port, "/mvc/maintenance")[0] == 200
        assert get(port, "/mvc/maintenance/x")[0] == 503
        assert get(port, "/dashboard")[0] == 503
        # The token is never recorded anywhere.
        dump = json.dumps([sim.nodes(), sim.requests("ka"), sim.events()])
        assert "s3cr3t" not in dump
    finally:
        sim.set("ka", state="RUNNING")


def test_keep_alive_bodies_and_http10(sim):
    port = sim.port("ka")
    with connect(port) as sock:
        reader = Reader(sock)
        # Several requests on one connection, with and without bodies.
        sock.sendall(request_bytes("/a", "POST", body=b"x" * 5000))
        assert reader.response()[0] == 200
        chunked = (b"POST /b HTTP/1.1\r\nHost: n\r\nTransfer-Encoding: chunked\r\n"
                   b"\r\n5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n")
        sock.sendall(chunked)
        code, _, body = reader.response()
        assert (code, body) == (200, b"node=ka path=/b state=RUNNING\n")
        # Pipelined, then HEAD.
        sock.sendall(request_bytes("/c") + request_bytes("/status", "HEAD"))
        assert reader.response()[2].startswith(b"node=ka path=/c")
        code, headers, body = reader.response(head_request=True)
        assert code == 200 and headers["content-length"] == "19" and body == b""
        # Expect: 100-continue gets the interim answer before the body.
        sock.sendall(b"PUT /d HTTP/1.1\r\nHost: n\r\nContent-Length: 3\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        assert reader.response()[0] == 100
        sock.sendall(b"abc")
        assert reader.response()[0] == 200
        sock.sendall(request_bytes("/e", headers=[("Connection", "close")]))
        code, headers, _ = reader.response()
        assert headers["connection"] == "close"
        assert sock.recv(10) == b""
    # HTTP/1.0: closes unless keep-alive is asked for.
    with connect(port) as sock:
        sock.sendall(request_bytes("/f", version="HTTP/1.0"))
        code, headers, body = split_response(recv_until_close(sock))
        assert code == 200 and headers["connection"] == "close"
    with connect(port) as sock:
        reader = Reader(sock)
        for _ in range(2):
            sock.sendall(request_bytes("/g", version="HTTP/1.0",
                                       headers=[("Connection", "keep-alive")]))
            code, headers, _ = reader.response()
            assert headers["connection"] == "keep-alive"
    # http.client reuses its connection as well.
    conn = http.client.HTTPConnection(HOST, port, timeout=3)
    try:
        first = None
        for path in ("/status", "/x", "/status"):
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            first = first or conn.sock
        assert conn.sock is first
    finally:
        conn.close()


def test_bad_request(sim):
    with connect(sim.port("ka")) as sock:
        sock.sendall(b"NONSENSE\r\n\r\n")
        assert split_response(recv_until_close(sock))[0] == 400


# -- STOPPED and refuse -------------------------------------------------------

def test_stopped_refuses_and_comes_back(sim):
    port = sim.port("st")
    idle = connect(port)
    try:
        idle.sendall(request_bytes())
        assert Reader(idle).response()[0] == 200
        record = sim.set("st", state="STOPPED")
        assert record["listening"] is False and record["port"] == port
        assert refused(port)
        # An idle keep-alive connection is closed as the node stops.
        assert idle.recv(10) == b""
    finally:
        idle.close()
    record = sim.set("st", state="STARTING")
    assert record["listening"] is True and record["port"] == port
    assert get(port)[0] == 503
    sim.set("st", state="RUNNING")
    assert get(port)[0] == 200


def test_node_started_stopped(sim):
    port = sim.port("off")
    assert port > 0 and refused(port)
    try:
        sim.set("off", state="RUNNING")
        assert get(port)[0] == 200
    finally:
        sim.set("off", state="STOPPED")
    assert refused(port)


def test_refuse_mode(sim, hostile):
    port = sim.port(hostile)
    sim.set(hostile, mode="refuse")          # always the whole port
    assert refused(port)
    sim.set(hostile, mode="normal")
    assert get(port, "/x")[0] == 200


# -- misbehaviour modes -------------------------------------------------------

def test_hang_until_mode_changes(sim, hostile):
    port = sim.port(hostile)
    sim.set(hostile, mode="hang")
    with connect(port) as sock:
        sock.sendall(request_bytes())
        sock.settimeout(0.4)
        with pytest.raises(socket.timeout):
            sock.recv(10)
        # Scope "status": user traffic is unaffected.
        assert get(port, "/browse")[0] == 200
        sim.set(hostile, mode="normal")
        sock.settimeout(2.0)
        assert sock.recv(10) == b""


def test_scope_all(sim, hostile):
    port = sim.port(hostile)
    sim.set(hostile, mode="hang", scope="all")
    with connect(port) as sock:
        sock.sendall(request_bytes("/browse"))
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(10)
    sim.set(hostile, mode="status401")
    assert get(port, "/browse")[0] == 401
    sim.set(hostile, scope="status")
    assert get(port, "/browse")[0] == 200


def test_scope_pages(sim, hostile):
    port = sim.port(hostile)
    sim.set(hostile, mode="custom", scope="pages",
            custom={"status": 503, "content_type": "text/html",
                    "body": "<p>down</p>"})
    try:
        status, _, body = get(port, "/browse")
        assert (status, body) == (503, b"<p>down</p>")
        status, _, body = get(port, "/status")
        assert status == 200 and b'"state"' in body, body
    finally:
        sim.set(hostile, mode="normal", scope="status")


def test_status_path(sim, hostile):
    port = sim.port(hostile)
    sim.set(hostile, status_path="/jira/status")
    try:
        status, _, body = get(port, "/jira/status")
        assert status == 200 and b'"state"' in body, body
        assert b'"state"' not in get(port, "/status")[2]
    finally:
        sim.set(hostile, status_path="/status")


def test_reset(sim, hostile):
    sim.set(hostile, mode="reset")
    with connect(sim.port(hostile)) as sock:
        sock.sendall(request_bytes())
        with pytest.raises(ConnectionResetError):
            sock.recv(100)


def read_until_reset(sock):
    data = b""
    with pytest.raises(ConnectionResetError):
        for _ in range(100):
            chunk = sock.recv(65536)
            assert chunk, "closed with FIN, not RST"
            data += chunk
    return data


def test_reset_headers(sim, hostile):
    sim.set(hostile, mode="reset_headers")
    with connect(sim.port(hostile)) as sock:
        sock.sendall(request_bytes())
        data = read_until_reset(sock)
    assert data.startswith(b"HTTP/1.1 200")
    assert b"\r\n\r\n" not in data


def test_reset_body(sim, hostile):
    sim.set(hostile, mode="reset_body")
    with connect(sim.port(hostile)) as sock:
        sock.sendall(request_bytes())
        data = read_until_reset(sock)
    code, headers, body = split_response(data)
    assert code == 200 and headers["content-length"] == "100"
    assert body == b'{"state":"'


def test_empty(sim, hostile):
    sim.set(hostile, mode="empty")
    with connect(sim.port(hostile)) as sock:
        sock.sendall(request_bytes("/status", "POST", body=b"abc"))
        assert sock.recv(100) == b""


def test_headers_never_end(sim, hostile):
    sim.set(hostile, mode="headers_never_end")
    with connect(sim.port(hostile)) as sock:
        sock.sendall(request_bytes())
        sock.settimeout(0.2)
        data = b""
        end = time.monotonic() + 0.75
        while time.monotonic() < end:
            try:
                data += sock.recv(4096)
            except socket.timeout:
                pass
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.count(b"\r\n") >= 3
    assert b"\r\n\r\n" not in data
    assert get(sim.port(hostile), "/x")[0] == 200


def test_drip(sim, hostile):
    sim.set(hostile, mode="drip")
    with connect(sim.port(hostile)) as sock:
        sock.sendall(request_bytes())
        reader = Reader(sock)
        while b"\r\n\r\n" not in reader.buf:
            reader.buf += sock.recv(4096)
        head, _, body = reader.buf.partition(b"\r\n\r\n")
        assert split_response(head + b"\r\n\r\n")[1]["content-length"] == "19"
        sock.settimeout(0.2)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            try:
                body += sock.recv(100)
            except socket.timeout:
                pass
    assert body.startswith(b'{"')
    assert 1 <= len(body) <= 3


def test_short_body(sim, hostile):
    sim.set(hostile, mode="short_body")
    with connect(sim.port(hostile)) as sock:
        sock.sendall(request_bytes())
        data = b""
        while len(data) < 200 and b'"}' not in data:
            data += sock.recv(4096)
        code, headers, body = split_response(data)
        assert headers["content-length"] == "1000"
        assert body == b'{"state":"RUNNING"}'
        sock.settimeout(0.4)
        with pytest.raises(socket.timeout):
            sock.recv(10)


def test_huge(sim, hostile):
    port = sim.port(hostile)
    sim.set(hostile, mode="huge")
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", "/status")
        resp = conn.getresponse()
        body = resp.read()
    finally:
        conn.close()
    assert resp.status == 200
    assert resp.getheader("Content-Type") == JSON
    assert len(body) == 10 * 1024 * 1024
    assert body.startswith(b'{"state":"RUNNING","pad":"xxx') and body.endswith(b'x"}')
    # A reader that gives up early does not upset the node.
    with connect(port) as sock:
        sock.sendall(request_bytes())
        assert sock.recv(65536)
    assert get(port, "/x")[0] == 200


def test_bad_chunk(sim, hostile):
    sim.set(hostile, mode="bad_chunk")
    with connect(sim.port(hostile)) as sock:
        sock.sendall(request_bytes())
        code, headers, body = split_response(recv_until_close(sock))
    assert headers["transfer-encoding"] == "chunked"
    assert body.startswith(b"zz\r\n")


def test_http09_and_garbage(sim, hostile):
    sim.set(hostile, mode="http09")
    with connect(sim.port(hostile)) as sock:
        sock.sendall(request_bytes())
        assert recv_until_close(sock) == b'{"state":"RUNNING"}'
    sim.set(hostile, mode="garbage")
    with connect(sim.port(hostile)) as sock:
        sock.sendall(request_bytes())
        data = recv_until_close(sock)
    assert len(data) >= 64 and not data.startswith(b"HTTP")


@pytest.mark.parametrize("mode,code,ctype,check", [
    ("redirect", 302, "text/html", lambda h, b: h["location"] == "/login.jsp?os_destination=%2Fstatus"),
    ("status401", 401, "text/html", lambda h, b: b"<html" in b),
    ("status403", 403, "text/html", lambda h, b: b"<html" in b),
    ("html200", 200, "text/html", lambda h, b: b"<html" in b and b"<form" in b),
    ("gzip", 200, "application/json",
     lambda h, b: h["content-encoding"] == "gzip"
     and gzip.decompress(b) == b'{"state":"RUNNING"}'),
    ("deep", 200, "application/json",
     lambda h, b: b == b"[" * 100_000 + b"]" * 100_000),
    ("invalid_utf8", 200, "application/json", lambda h, b: b == b'{"state":"RUN\xffNING"}'),
    ("nul", 200, "application/json", lambda h, b: b == b'{"state":"RUNNING"}\x00garbage'),
])
def test_fixed_answers(sim, hostile, mode, code, ctype, check):
    sim.set(hostile, mode=mode)
    got, headers, body = get(sim.port(hostile))
    assert got == code
    assert headers["content-type"].startswith(ctype)
    assert int(headers["content-length"]) == len(body)
    assert check(headers, body)


def test_custom(sim, hostile):
    sim.set(hostile, mode="custom", custom={"status": 418, "content_type": "text/x-odd",
                                            "body": '{"state":"TEAPOT"}'})
    code, headers, body = get(sim.port(hostile))
    assert (code, headers["content-type"], body) == (418, "text/x-odd", b'{"state":"TEAPOT"}')
    assert get(sim.port(hostile), "/x")[0] == 200       # scope "status"


# -- records, scripts, control API ---------------------------------------------

def test_counts_and_requests(sim):
    port = sim.port("c")
    record = sim.set("c", reset_counts=True)
    assert record["counts"] == {"status": 0, "other": 0, "by_path": {}}
    before = time.time()
    for path in ("/status", "/a", "/status", "/a?q=1", "/b", "/status"):
        get(port, path)
    record = sim.nodes()["c"]
    assert record["counts"] == {"status": 3, "other": 3,
                                "by_path": {"/status": 3, "/a": 2, "/b": 1}}
    times = record["status_times"]
    assert len(times) == 3 and times == sorted(times) and times[0] >= before - 1
    assert {"port", "flavor", "state", "mode", "scope"} <= set(record)
    log = sim.requests("c")
    assert [(p, s) for _, p, s in log] == [("/a", 200), ("/a", 200), ("/b", 200)]
    assert sim.node("c")["counts"]["other"] == 3


def test_script_and_events(sim):
    port = sim.port("sc")
    started = time.time()
    t0 = time.monotonic()
    sim.script("sc", [["STOPPING", 0.3], ["STOPPED", 0.3], ["STARTING", 0.3],
                      ["RUNNING", 0]])
    assert time.monotonic() - t0 < 0.25          # returns at once
    assert wait_until(lambda: refused(port), 2.0)
    record = sim.wait_script("sc", timeout=5.0)
    assert record["state"] == "RUNNING" and record["listening"]
    assert get(port)[0] == 200
    events = [e for e in sim.events() if e["node"] == "sc" and e["t"] >= started - 0.5]
    assert [e["state"] for e in events] == ["STOPPING", "STOPPED", "STARTING", "RUNNING"]
    gaps = [b["t"] - a["t"] for a, b in zip(events, events[1:])]
    assert all(0.2 < g < 1.0 for g in gaps), gaps


def test_control_errors(sim):
    with pytest.raises(SimNodesError, match="404"):
        sim.set("nope", state="RUNNING")
    with pytest.raises(SimNodesError, match="400"):
        sim.set("bb", mode="sideways")
    with pytest.raises(SimNodesError, match="400"):
        sim.set("bb", colour="blue")
    with pytest.raises(SimNodesError, match="400"):
        sim.script("bb", [["RUNNING", -1]])
    assert sim.node("bb")["mode"] == "normal"



def timed_get(port, path="/rest/api/1.0/projects"):
    t0 = time.monotonic()
    code, headers, body = get(port, path)
    return code, time.monotonic() - t0


def test_delay_and_cold_start(tmp_path):
    """delay_ms slows every page (not the status path); a node with cold
    set is cold from its turn to RUNNING: the extra time falls with tau_s
    and at most `concurrency` pages are served at once, the others
    queue."""
    import concurrent.futures
    with SimNodes.start(nodes=[("w", "bitbucket", "RUNNING")],
                        tmpdir=tmp_path) as sim:
        port = sim.port("w")
        rec = sim.set("w", delay_ms=50)
        assert rec["delay_ms"] == 50 and rec["cold"] is None
        assert rec["cold_since"] is None and rec["cold_extra_ms"] == 0
        code, dt = timed_get(port)
        assert code == 200 and 0.045 <= dt < 0.5, dt
        code, dt = timed_get(port, "/status")
        assert code == 200 and dt < 0.045, dt

        # set while RUNNING: not armed until the node turns RUNNING again
        rec = sim.set("w", delay_ms=5,
                      cold={"extra_ms": 400, "tau_s": 1.0,
                            "concurrency": 2})
        assert rec["cold"] == {"extra_ms": 400, "tau_s": 1.0,
                               "concurrency": 2}
        assert rec["cold_since"] is None
        assert timed_get(port)[1] < 0.2
        sim.set("w", state="STARTING")
        assert sim.node("w")["cold_since"] is None
        before = time.time()
        rec = sim.set("w", state="RUNNING")
        assert before <= rec["cold_since"] <= time.time()
        assert 300 < rec["cold_extra_ms"] <= 400

        # four at once, two slots: two are served at once, two wait for
        # them (about 2 x 0.4 s for the last one)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            futs = [pool.submit(timed_get, port) for _ in range(4)]
            time.sleep(0.15)
            mid = sim.node("w")
            times = sorted(f.result()[1] for f in futs)
        assert mid["in_service"] == 2 and mid["queued"] == 2, mid
        assert 0.25 < times[0] < 0.45 and times[1] < 0.45, times
        assert times[3] > 0.5, times
        # the status path is neither slowed nor queued
        assert timed_get(port, "/status")[1] < 0.1

        # warm after a few time constants: the base time again
        assert wait_until(lambda: sim.node("w")["cold_extra_ms"] < 10, 5.0)
        assert timed_get(port)[1] < 0.1

        # cold_start arms it at once; STOPPED and cold=null make it warm
        rec = sim.set("w", cold_start=True)
        assert rec["cold_since"] is not None and rec["cold_extra_ms"] > 300
        assert timed_get(port)[1] > 0.25
        rec = sim.set("w", state="STOPPED")
        assert rec["cold_since"] is None
        sim.set("w", state="RUNNING")         # armed again: cold still set
        rec = sim.set("w", cold=None)
        assert rec["cold"] is None and rec["cold_since"] is None
        assert timed_get(port)[1] < 0.2

        # refused values leave the node as it was
        for bad in ({"delay_ms": -1}, {"delay_ms": True},
                    {"cold": {"tau_s": 0}}, {"cold": {"concurrency": 1.5}},
                    {"cold": {"colour": 1}}, {"cold_start": True}):
            with pytest.raises(SimNodesError, match="400"):
                sim.set("w", **bad)
        assert sim.node("w")["delay_ms"] == 5


# -- separate processes --------------------------------------------------------

def test_stop_shutdown_and_ports_file(tmp_path):
    sim = SimNodes.start(nodes=[("a",)], tmpdir=tmp_path)
    files = list(tmp_path.glob("*.ports.json"))
    assert len(files) == 1
    ports = json.loads(files[0].read_text())
    assert ports["nodes"] == {"a": sim.port("a")} and ports["control"] == sim.control_port
    port = sim.port("a")
    assert get(port)[0] == 200
    assert sim.stop() == 0
    assert sim.stop() == 0                      # twice is fine
    assert refused(port)
    assert not list(tmp_path.glob("*.ports.json"))

    with SimNodes.start(nodes=[("b", "jira", "MAINTENANCE", 0)], tmpdir=tmp_path) as sim:
        assert get(sim.port("b"))[0] == 503
        sim._call("POST", "/shutdown")
        sim.proc.wait(5)
        assert sim.returncode == 0


def test_many_nodes_and_fd_limit(tmp_path):
    with SimNodes.start(many=40, base_name="m", tmpdir=tmp_path) as sim:
        names = sim.names()
        assert names == [f"m{i}" for i in range(1, 41)]
        assert len({sim.port(n) for n in names}) == 40
        for name in names:
            code, headers, _ = get(sim.port(name))
            assert code == 200 and headers["x-node"] == name
        with open(f"/proc/{sim.proc.pid}/limits") as f:
            line = next(l for l in f if l.startswith("Max open files"))
        soft, hard = line.split()[3:5]
        assert soft == hard


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6(tmp_path):
    with SimNodes.start(nodes=[("v6", "bitbucket", "STARTING")], host="::1",
                        tmpdir=tmp_path) as sim:
        assert get(sim.port("v6"), host="::1")[0] == 503
        sim.set("v6", state="STOPPED")
        assert refused(sim.port("v6"), host="::1")
        sim.set("v6", state="RUNNING")
        assert get(sim.port("v6"), host="::1")[0] == 200


def test_bad_command_line(tmp_path):
    with open(os.devnull, "w") as devnull, \
            pytest.raises(SimNodesError, match="exited"):
        SimNodes.start(nodes=[("x", "fisheye", "RUNNING")], tmpdir=tmp_path,
                       stderr=devnull)


def test_every_flavor_on_the_command_line(tmp_path):
    with SimNodes.start(nodes=[("ba", "bamboo", "PAUSED"),
                               ("co", "confluence", "FIRST_RUN"),
                               ("cr", "crowd", "RUNNING")],
                        tmpdir=tmp_path) as sim:
        assert get(sim.port("ba"), BAMBOO_STATUS)[:3:2] == \
            (200, b'{"state":"PAUSED"}')
        assert get(sim.port("co"), "/status")[:3:2] == \
            (200, b'{"state":"FIRST_RUN"}')
        assert get(sim.port("co"), "/synchrony/heartbeat")[2] == b"OK"
        assert get(sim.port("cr"), "/status")[:3:2] == \
            (200, b'{"state":"RUNNING"}')
