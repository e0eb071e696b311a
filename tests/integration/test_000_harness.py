"""Self-test of the integration harness, with stock modules only."""

import http.server
import os
import re
import threading

import pytest

from httpd import Httpd, HttpdError, _alive, wait_until

HELLO = """
<Location /hello>
    SetHandler server-status
    Header always set X-Harness "hello"
    Header always set X-Port "@PORT@"
</Location>
<Location /denied>
    Require all denied
</Location>
"""


def _uid(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def test_start_get_graceful_stop(httpd_factory):
    h = httpd_factory(load_bbstatus=False)
    h.start(HELLO)
    assert os.path.exists(h.pid_path)
    assert h.url("/x") == f"http://127.0.0.1:{h.port}/x"

    status, headers, body = h.get("/hello?auto")
    assert status == 200, body
    assert headers["x-harness"] == "hello"
    assert headers["X-Port"] == str(h.port)      # @PORT@ substituted
    assert headers["Content-Type"].startswith("text/plain")
    assert b"ServerVersion:" in body

    kids = wait_until(h.children, 5, what="child processes")
    if os.geteuid() == 0:
        # children dropped privileges to the configured User
        assert all(_uid(k) != 0 for k in kids), kids

    main = h.pid
    off = h.log_offset()
    h.graceful()
    assert h.pid == main
    assert "SIGUSR1" in h.error_log_since(off)
    assert h.get("/hello?auto")[0] == 200

    off = h.restart(HELLO + "\nHeader always set X-Gen two\n")
    assert "SIGHUP" in h.error_log_since(off)
    status, headers, _ = h.get("/hello?auto")
    assert status == 200 and headers.get("x-gen") == "two"

    kids = wait_until(h.children, 5, what="child processes after restart")
    assert h.stop() is True
    assert not _alive(main)
    assert not any(_alive(k) for k in kids)
    assert not os.path.exists(h.pid_path)
    assert h.children() == []
    # graceful-stop, as Debian's apache2.service stops it
    assert re.search(r"caught SIGWINCH, shutting down gracefully|"
                     r"SIGWINCH received", h.error_log()), h.error_log()
    assert h.stop() is True                      # idempotent
    assert '"GET /hello?auto HTTP/1.1" backend=-' in h.access_log()


def test_configtest(httpd_factory):
    h = httpd_factory(load_bbstatus=False)
    rc, out = h.configtest(HELLO)
    assert rc == 0, out
    assert "Syntax OK" in out
    rc, out = h.configtest("NoSuchDirective 42\n")
    assert rc != 0
    assert "NoSuchDirective" in out


def test_start_failure_reports_log(httpd_factory):
    h = httpd_factory(load_bbstatus=False)
    with pytest.raises(HttpdError) as e:
        h.start("BogusDirective on\n")
    assert "BogusDirective" in str(e.value)
    assert h.pid is None and not h.children()


def test_missing_module_fails_clearly(httpd_factory, tmp_path):
    h = httpd_factory(module_path=tmp_path / "nope" / "mod_bbstatus.so")
    with pytest.raises(HttpdError, match=r"mod_bbstatus is not built: .*nope"):
        h.start("")
    with pytest.raises(HttpdError, match="not built"):
        h.configtest("")


@pytest.mark.allow_log(r"AH01630: client denied")
def test_log_checking(httpd_factory):
    h = httpd_factory(load_bbstatus=False)
    h.start(HELLO)
    off = h.log_offset()
    assert h.get("/denied")[0] == 403
    m = h.wait_log(r"AH01630: client denied.*?/denied", deadline=5, since=off)
    assert m
    bad = h.unexpected_log_lines(since=off)
    assert len(bad) == 1 and "[authz_core:error]" in bad[0], bad
    assert h.unexpected_log_lines(since=off, allow=[r"AH01630"]) == []
    assert h.unexpected_log_lines(since=h.log_offset()) == []
    with pytest.raises(AssertionError, match="no-such-line"):
        h.wait_log("no-such-line", deadline=0.2, since=off)


def test_log_classification(tmp_path):
    h = Httpd(tmp_path / "fake", load_bbstatus=False, name="fake")
    lines = [
        "[Wed Nov 25 10:00:00.1 2026] [core:notice] [pid 1] AH00094: ok",
        "[Wed Nov 25 10:00:00.2 2026] [proxy:warn] [pid 1] AH00001: w",
        "[Wed Nov 25 10:00:00.3 2026] [bbstatus:error] [pid 1] AH99999: e",
        "[Wed Nov 25 10:00:00.4 2026] [core:crit] [pid 1] c",
        "[Wed Nov 25 10:00:00.5 2026] [proxy_hcheck:debug] [pid 1] "
        "AH03257: Somehow tried to use unimplemented hcheck method: 7",
        "[Wed Nov 25 10:00:00.6 2026] [core:notice] [pid 1] AH00052: child "
        "pid 5 exit signal Segmentation fault (11)",
        "[Wed Nov 25 10:00:00.7 2026] [bbstatus:info] [pid 1] fine",
        "[Wed Nov 25 10:00:00.8 2026] [bbstatus:trace4] [pid 1] [warn] text",
    ]
    with open(h.error_log_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        _classify(h, lines)
    finally:
        # the after-test check (conftest) would rightly object to this log
        os.unlink(h.error_log_path)


def _classify(h, lines):
    assert h.unexpected_log_lines() == [lines[i] for i in (1, 2, 3, 4, 5)]
    # AH03257 cannot be allowed, everything else can
    assert h.unexpected_log_lines(allow=[r".*"]) == [lines[4]]
    assert h.unexpected_log_lines(allow=["AH00001", "Segmentation"]) == \
        [lines[i] for i in (2, 3, 4)]
    off = len(("\n".join(lines[:5]) + "\n").encode())
    assert h.unexpected_log_lines(since=off) == [lines[5]]


def test_wait_until():
    assert wait_until(lambda: 42, 1) == 42
    calls = []

    def never():
        calls.append(1)
        return []

    with pytest.raises(AssertionError, match=r"the answer; last value: \[\]"):
        wait_until(never, 0.2, interval=0.01, what="the answer")
    assert len(calls) > 2
    with pytest.raises(ZeroDivisionError):
        wait_until(lambda: 1 / 0, 0.2)
    with pytest.raises(AssertionError, match="ZeroDivisionError"):
        wait_until(lambda: 1 / 0, 0.2, ignore=(ZeroDivisionError,))


@pytest.fixture
def backend():
    """In-process HTTP backend on 127.0.0.1; records request paths."""
    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            seen.append(self.path)
            body = f"backend-ok {self.path}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True)
    t.start()
    srv.seen = seen
    srv.port = srv.server_address[1]
    yield srv
    srv.shutdown()
    srv.server_close()
    t.join(5)


def test_stock_balancer(httpd_factory, backend):
    h = httpd_factory(load_bbstatus=False)
    h.start(f"""
<Proxy balancer://b>
    BalancerMember http://127.0.0.1:{backend.port} hcmethod=GET hcinterval=1 hcuri=/hc
</Proxy>
ProxyPass /app balancer://b
<Location /balancer-manager>
    SetHandler balancer-manager
</Location>
ProxyPass /balancer-manager !
""")
    status, _, body = h.get("/app/hello")
    assert status == 200, body
    assert body == b"backend-ok /hello\n"
    assert "/hello" in backend.seen

    # mod_proxy_hcheck probes the member on its own
    wait_until(lambda: "/hc" in backend.seen, 10, what="health check request")

    # without a matching Referer, 2.4.71 logs AH10187 (error) for any
    # balancer-manager request
    status, _, body = h.get("/balancer-manager", headers={
        "Referer": h.url("/balancer-manager")})
    assert status == 200
    text = body.decode()
    assert "balancer://b" in text
    assert f"http://127.0.0.1:{backend.port}" in text
    assert re.search(r"<td>GET</td>", text), text

    log = wait_until(lambda: re.search(r'"GET /app/hello HTTP/1.1" backend=\S+',
                                       h.access_log()), 5, what="access log")
    assert f"backend=http://127.0.0.1:{backend.port}" in log.group(0)
