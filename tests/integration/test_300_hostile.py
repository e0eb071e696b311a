"""Hostile /status answers against a real httpd.

One httpd serves one balancer per hostile case: the hostile member (a
simulated node in one of its misbehaving modes, or an unresolvable host, or
an https node whose certificate does not verify) next to one healthy
RUNNING member.  Every member is checked with hcmethod=BBSTATUS,
hcinterval=1, hcfails=1 and BBStatusTimeout 2.

For every case:
  * the hostile member is out (decision "block", in_rotation false, HcFl)
    with a reason that names what was wrong with the answer;
  * httpd survived (same parent, its children alive, no crash lines);
  * the healthy member of the same balancer is untouched: it routes, its
    checks keep coming every interval, and ten requests through the proxy
    are all answered 200 by it.

httpd and the nodes are started once for the whole file (module fixture);
each case's assertions are their own test.
"""

import json
import os
import re
import shutil
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bbs import SSL_BUILD_LOG, make_cert, module_loglevel
from httpd import Httpd, _alive, _proc_stat, module_load_error, wait_until
from simclient import SimNodes

INTERVAL = 1.0            # hcinterval of every member, seconds
TIMEOUT = 2.0             # BBStatusTimeout
# a decision needs at most: first check within one interval, a probe that
# may use its whole time limit, plus slack for a loaded machine
DECIDE_DEADLINE = 3 * INTERVAL + TIMEOUT + 2
REQUESTS = 10
# a probe cut off by BBStatusTimeout takes about that long, never more
SLOW = (TIMEOUT * 1000 - 100, TIMEOUT * 1000 + 1000)

HOSTILE_STATE = '<b>x</b>\u0007\u001b[31m'
LONG_STATE = "A" * 10_000


@dataclass
class Case:
    id: str                       # test id, balancer and node name part
    mode: str                     # simnode mode of the hostile node
    words: tuple                  # substrings the reason must contain
    verdict: str = "fail"         # "fail": nothing trustworthy learned;
                                  # "block": a state outside BBStatusRoute
    custom: dict = None           # for mode "custom"
    proxy_conf: str = ""          # extra lines for the <Proxy> section
    state: object = None          # expected "state" in the JSON, if fixed
    http_status: object = None    # expected "http_status" in the JSON
    latency_ms: tuple = None      # (min, max) of the probe's duration
    # parameters on the <Proxy balancer://...> line (settings in the
    # section must apply with and without them)
    section_args: str = ""

    @property
    def balancer(self):
        # <Proxy> sections match by prefix, as for requests: no balancer
        # name here may be the beginning of another's
        return "balancer://" + self.id.replace("_", "-") + "-bb"

    @property
    def prefix(self):
        return "/c/" + self.id.replace("_", "-") + "/"

    @property
    def hostile(self):
        return "h_" + self.id

    @property
    def healthy(self):
        return "ok_" + self.id


CASES = [
    Case("refuse", "refuse", ("connection refused",)),
    Case("hang", "hang", ("timed out: waiting for the status line",),
         latency_ms=SLOW),
    Case("reset", "reset", ("connection reset: waiting for the status line",)),
    Case("reset_headers", "reset_headers",
         ("connection reset: while reading the headers",)),
    Case("reset_body", "reset_body",
         ("connection reset: while reading the body",)),
    Case("empty", "empty", ("empty reply",)),
    Case("headers_never_end", "headers_never_end",
         ("timed out: while reading the headers",), latency_ms=SLOW),
    Case("drip", "drip", ("timed out: while reading the body",),
         latency_ms=SLOW),
    Case("short_body", "short_body", ("timed out: while reading the body",),
         latency_ms=SLOW),
    Case("huge", "huge", ("body larger than 8192 bytes",
                          "BBStatusMaxBody")),
    Case("bad_chunk", "bad_chunk",
         ("body could not be read: bad chunked encoding",)),
    Case("http09", "http09", ("not an HTTP/1.x response",)),
    Case("garbage", "garbage", ("not an HTTP/1.x response",)),
    Case("redirect", "redirect",
         ("redirect (HTTP 302)", "/login.jsp", "is not followed"),
         http_status=302),
    Case("status401", "status401", ("HTTP 401 is not a status answer",),
         http_status=401),
    Case("status403", "status403", ("HTTP 403 is not a status answer",),
         http_status=403),
    Case("html200", "html200", ("HTML page (HTTP 200)",), http_status=200),
    Case("gzip", "gzip", ("body is gzip-encoded (HTTP 200)",
                          "not asked for"), http_status=200),
    # below BBStatusMaxBody the parser itself meets 100,000 nested arrays
    Case("deep", "deep", ("body is not JSON (HTTP 200)",
                          "maximum parsing depth"),
         proxy_conf="BBStatusMaxBody 1M", section_args="lbmethod=byrequests",
         http_status=200),
    Case("invalid_utf8", "invalid_utf8",
         ("body is not JSON (HTTP 200)", "0xff"), http_status=200),
    Case("nul", "nul", ("body is not JSON (HTTP 200)",), http_status=200),
    # a 10,000 character state: with the default BBStatusMaxBody the body
    # is too large; with room for it the state is judged (cut for display)
    Case("long_state_default", "custom",
         ("body larger than 8192 bytes",),
         custom={"status": 200, "content_type": "application/json",
                 "body": json.dumps({"state": LONG_STATE})},
         http_status=200),
    Case("long_state", "custom", ("state AAAA", "is not in BBStatusRoute"),
         verdict="block",
         custom={"status": 200, "content_type": "application/json",
                 "body": json.dumps({"state": LONG_STATE})},
         proxy_conf="BBStatusMaxBody 16k", http_status=200),
    Case("html_state", "custom",
         ("state <b>x</b>??[31m (HTTP 200) is not in BBStatusRoute",),
         verdict="block",
         custom={"status": 200, "content_type": "application/json",
                 "body": json.dumps({"state": HOSTILE_STATE})},
         state="<b>x</b>??[31m", http_status=200),
]
CASE_BY_ID = {c.id: c for c in CASES}

DNS_HOST = "no-such-host.invalid"
DNS_MEMBER = f"http://{DNS_HOST}:7990"


# --- a TLS node ------------------------------------------------------------

class _TLSHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.seen.append(self.path)
        if self.path == "/status":
            ctype, body = "application/json", b'{"state":"RUNNING"}'
        else:
            ctype = "text/plain"
            body = f"node=tls path={self.path} state=RUNNING\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Node", "tls")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class TLSNode(ThreadingHTTPServer):
    """HTTPS on 127.0.0.1; the handshake runs in the request's thread."""

    daemon_threads = True

    def __init__(self, certfile, keyfile):
        super().__init__(("127.0.0.1", 0), _TLSHandler)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certfile, keyfile)
        self.seen = []
        self.port = self.server_address[1]
        self.thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05},
            daemon=True)
        self.thread.start()

    def finish_request(self, request, client_address):
        request.settimeout(10)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return              # the peer refused our certificate
        try:
            super().finish_request(tls, client_address)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        pass

    def stop(self):
        self.shutdown()
        self.server_close()
        self.thread.join(5)


# --- the shared httpd -----------------------------------------------------

def _member_line(url):
    return (f"    BalancerMember {url} hcmethod=BBSTATUS "
            f"hcinterval={int(INTERVAL)} hcfails=1\n")


class Env:
    def __init__(self, h, nodes, tls, allow):
        self.h = h
        self.nodes = nodes
        self.tls = tls              # TLSNode or None (no openssl)
        self.allow = allow
        self.pid = h.pid
        self.pid_start = _proc_stat(h.pid)[3]
        self.kids = {k: _proc_stat(k)[3] for k in h.children()}
        self.started = time.monotonic()

    def node_url(self, name):
        return f"http://127.0.0.1:{self.nodes.port(name)}"

    def status_json(self):
        status, headers, body = self.h.get("/bbstatus?format=json")
        assert status == 200, body
        return body, json.loads(body)

    def member(self, balancer, name, data=None):
        if data is None:
            data = self.status_json()[1]
        for b in data["balancers"]:
            if b["name"] == balancer:
                for m in b["members"]:
                    if m["name"] == name:
                        return m
                raise AssertionError(f"{name} not in {balancer}: {b}")
        raise AssertionError(f"no {balancer} in {data}")


@pytest.fixture(scope="module")
def env(tmp_path_factory, request):
    base = tmp_path_factory.mktemp("hostile")
    names = []
    for c in CASES:
        names += [(c.hostile, "bitbucket", "RUNNING"),
                  (c.healthy, "bitbucket", "RUNNING")]
    names += [("ok_dns", "bitbucket", "RUNNING"),
              ("ok_tls_bad", "bitbucket", "RUNNING"),
              ("ok_tls_bad_args", "bitbucket", "RUNNING")]
    nodes = SimNodes.start(nodes=names, tmpdir=str(base))
    tls = None
    h = None
    try:
        for c in CASES:
            fields = {"mode": c.mode}
            if c.custom:
                fields["custom"] = c.custom
            nodes.set(c.hostile, **fields)

        # mod_ssl of httpd 2.4.37 does not load with OpenSSL 3 (make
        # check-compat): the TLS cases are skipped there, with that reason
        no_tls = ("the openssl command is not installed"
                  if not shutil.which("openssl")
                  else module_load_error("ssl"))
        openssl = None if no_tls else shutil.which("openssl")
        h = Httpd(base / "httpd", name="hostile",
                  extra_modules=("ssl",) if openssl else (),
                  module_loglevel=module_loglevel(request.config))
        if openssl:
            certs = os.path.join(h.root, "certs")
            os.makedirs(certs, exist_ok=True)
            os.chmod(certs, 0o755)
            server_crt, server_key = make_cert(openssl, certs, "node",
                                                "127.0.0.1")
            other_ca, _ = make_cert(openssl, certs, "other-ca",
                                     "Unrelated Test CA")
            tls = TLSNode(server_crt, server_key)

        port = {n[0]: nodes.port(n[0]) for n in names}
        conf = [f"BBStatusTimeout {int(TIMEOUT)}\n"]
        for c in CASES:
            args = f" {c.section_args}" if c.section_args else ""
            conf.append(f"<Proxy {c.balancer}{args}>\n"
                        + _member_line(f"http://127.0.0.1:{port[c.hostile]}")
                        + _member_line(f"http://127.0.0.1:{port[c.healthy]}")
                        + (f"    {c.proxy_conf}\n" if c.proxy_conf else "")
                        + "</Proxy>\n")
        conf.append("<Proxy balancer://bb-dns>\n"
                    + _member_line(DNS_MEMBER)
                    + _member_line(f"http://127.0.0.1:{port['ok_dns']}")
                    + "</Proxy>\n")
        if tls:
            tls_url = f"https://127.0.0.1:{tls.port}"
            conf.append("SSLProxyEngine on\n")
            # an unrelated CA: the node's certificate cannot verify; once
            # in a plain <Proxy> section (as it is mostly written), once in
            # one with parameters on its line
            for b, args, ok in (("tls-bad-plain", "", "ok_tls_bad"),
                                ("tls-bad-args", " lbmethod=byrequests",
                                 "ok_tls_bad_args")):
                conf.append(f"<Proxy balancer://{b}{args}>\n"
                            + _member_line(tls_url)
                            + _member_line(f"http://127.0.0.1:{port[ok]}")
                            + "    SSLProxyVerify require\n"
                            + f'    SSLProxyCACertificateFile "{other_ca}"\n'
                            + "</Proxy>\n")
            # the right CA (and the certificate names 127.0.0.1)
            conf.append("<Proxy balancer://tls-good>\n"
                        + _member_line(tls_url)
                        + "    SSLProxyVerify require\n"
                        + f'    SSLProxyCACertificateFile "{server_crt}"\n'
                        + "    SSLProxyCheckPeerName on\n"
                        + "</Proxy>\n")
        conf.append("ProxyPass /bbstatus !\n"
                    "ProxyPass /server-status !\n"
                    "ProxyPass /balancer-manager !\n")
        for c in CASES:
            conf.append(f"ProxyPass {c.prefix} {c.balancer}/\n")
        conf.append("ProxyPass /c/dns/ balancer://bb-dns/\n")
        if tls:
            conf.append("ProxyPass /c/tls-bad/ balancer://tls-bad-plain/\n"
                        "ProxyPass /c/tls-bad-args/ "
                        "balancer://tls-bad-args/\n"
                        "ProxyPass /c/tls-good/ balancer://tls-good/\n")
        conf.append("<Location /bbstatus>\n    SetHandler bbstatus\n"
                    "</Location>\n"
                    "<Location /server-status>\n    SetHandler server-status\n"
                    "</Location>\n")

        # error_log lines at warn level or worse that are expected here
        allow = []
        if tls:
            allow += [
                # mod_ssl at start-up; no server-side session cache (only
                # outgoing TLS here)
                SSL_BUILD_LOG,
                r"\[ssl:warn\] .* AH01873: Init: Session Cache is not "
                r"configured",
            ]
        h.start("".join(conf))
        e = Env(h, nodes, tls, allow)
        e.no_tls = no_tls

        # every BBSTATUS member checked at least twice before the cases look
        def all_checked():
            data = e.status_json()[1]
            slow = [(b["name"], m["name"], m.get("checks"))
                    for b in data["balancers"] for m in b["members"]
                    if m["hcmethod"] == "BBSTATUS" and m["checks"] < 2]
            return not slow, slow
        _poll(all_checked, 2 * DECIDE_DEADLINE + 5,
              "two checks of every member")
        yield e
    finally:
        try:
            if h is not None:
                h.stop()
        finally:
            nodes.stop()
            if tls:
                tls.stop()


@pytest.fixture(autouse=True)
def _expected_log_lines(request, env):
    request.node.add_marker(pytest.mark.allow_log(*env.allow))


# --- common assertions ------------------------------------------------------

def _poll(fn, deadline, what):
    """wait_until for ``fn() -> (done, value)``; returns the value, and names
    the last value when the deadline passes."""
    last = []

    def step():
        done, value = fn()
        last[:] = [value]
        return done
    try:
        wait_until(step, deadline, interval=0.1, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}; last seen: {last[0] if last else None!r}"
                             ) from None
    return last[0]


def _hostile_out(env, balancer, name, words):
    """Wait until the member is out with every word in its reason."""
    def ok():
        m = env.member(balancer, name)
        return (m["decision"] == "block" and m["in_rotation"] is False
                and m["checks"] >= 2
                and all(w in m["reason"] for w in words)), m
    return _poll(ok, DECIDE_DEADLINE,
                 f"{name} in {balancer} out with {words!r}")


def _assert_out(m, words, verdict):
    assert m["decision"] == "block", m
    assert m["in_rotation"] is False, m
    assert "HcFl" in m["flags"], m
    for w in words:
        assert w in m["reason"], (w, m["reason"])
    assert m["checks"] >= 2, m
    if verdict == "fail":
        # nothing trustworthy learned, ever: every check failed
        assert m["failures"] == m["checks"], m
    else:
        assert m["failures"] == 0, m
    hist = m["history"]
    assert hist and hist[-1]["from"] == "pending", hist
    assert all(x["to"] == "block" for x in hist), hist
    assert len(m["reason"]) < 200, m["reason"]


def _assert_healthy(env, balancer, name, prefix, node_name):
    """The healthy member routes, keeps being checked every interval, and
    carries all user traffic of the balancer."""
    m = env.member(balancer, name)
    assert m["decision"] == "route", m
    assert m["in_rotation"] is True, m
    assert m["state"] == "RUNNING" and m["http_status"] == 200, m
    assert m["failures"] == 0, m
    assert "HcFl" not in m["flags"], m
    c0 = m["checks"]

    def checked_after(n):
        def fn():
            x = env.member(balancer, name)
            return x["checks"] > n, x
        return fn
    # the next check comes within an interval (plus slack for load), and
    # the last two were one interval apart
    m2 = _poll(checked_after(c0), INTERVAL + 2.5, f"a new check of {name}")
    assert 500 <= m2["interval_ms"] <= 2500, m2
    assert m2["decision"] == "route" and m2["failures"] == 0, m2
    # no interval was skipped since httpd started (generous for load)
    elapsed = time.monotonic() - env.started
    assert m2["checks"] >= int(elapsed / INTERVAL * 0.6) - 2, \
        (m2["checks"], elapsed)

    for i in range(REQUESTS):
        status, headers, body = env.h.get(f"{prefix}req{i}")
        assert status == 200, (i, status, body)
        assert headers.get("x-node") == node_name, (i, headers, body)
        assert body.startswith(f"node={node_name} path=/req{i} ".encode()), \
            body


def _assert_httpd_alive(env):
    h = env.h
    assert h.pid == env.pid and _alive(env.pid, env.pid_start), \
        "the httpd parent changed or died"
    gone = [k for k, st in env.kids.items() if not _alive(k, st)]
    assert not gone, f"httpd children died: {gone}; now {h.children()}"
    log = h.error_log()
    for bad in ("Segmentation fault", "exit signal", "AddressSanitizer"):
        assert bad not in log, [ln for ln in log.splitlines() if bad in ln]


# --- the simulated-node cases ----------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_member_is_out(env, case):
    hostile = env.node_url(case.hostile)
    m = _hostile_out(env, case.balancer, hostile, case.words)
    print(f"{case.id}: reason: {m['reason']}")
    _assert_out(m, case.words, case.verdict)
    assert m["probe_url"] == hostile + "/status", m
    if case.http_status is not None:
        assert m["http_status"] == case.http_status, m
    if case.state is not None:
        assert m["state"] == case.state, m
    if case.latency_ms is not None:
        lo, hi = case.latency_ms
        assert lo <= m["latency_ms"] <= hi, m
    _assert_healthy(env, case.balancer, env.node_url(case.healthy),
                    case.prefix, case.healthy)
    # no user request ever went to the hostile node
    assert env.nodes.requests(case.hostile) == [], \
        env.nodes.requests(case.hostile)
    _assert_httpd_alive(env)


def test_redirect_is_not_followed(env):
    c = CASE_BY_ID["redirect"]
    _hostile_out(env, c.balancer, env.node_url(c.hostile), c.words)
    rec = env.nodes.node(c.hostile)
    paths = rec["counts"]["by_path"]
    assert rec["counts"]["status"] >= 2, rec["counts"]
    assert set(paths) == {"/status"}, paths
    assert not any(p.startswith("/login.jsp") for p in paths), paths
    assert env.nodes.requests(c.hostile) == []


def test_long_state_is_cut(env):
    c = CASE_BY_ID["long_state"]
    m = _hostile_out(env, c.balancer, env.node_url(c.hostile), c.words)
    state = m["state"]
    assert state.startswith("AAAA") and state.endswith("..."), state
    assert len(state) < 64, len(state)
    assert set(state[:-3]) == {"A"}, state
    assert m["reason"] == (f"state {state} (HTTP 200) is not in "
                           f"BBStatusRoute"), m["reason"]
    # the server-status line stays one line too
    status, _, body = env.h.get("/server-status?auto")
    assert status == 200
    lines = [ln for ln in body.decode().splitlines()
             if ln.startswith("BBStatusMember: ") and c.balancer in ln
             and env.node_url(c.hostile) + " " in ln]
    assert len(lines) == 1, lines
    assert "A" * 100 not in lines[0], lines[0]


def test_html_state_is_escaped_everywhere(env):
    c = CASE_BY_ID["html_state"]
    member = env.node_url(c.hostile)
    _hostile_out(env, c.balancer, member, c.words)

    # JSON: no raw control characters anywhere, the state made printable
    raw, data = env.status_json()
    assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", raw), \
        re.findall(rb".{0,20}[\x00-\x09\x0b-\x1f\x7f].{0,20}", raw)
    m = env.member(c.balancer, member, data)
    assert m["state"] == "<b>x</b>??[31m", m
    assert not re.search(r"[\x00-\x1f\x7f]", m["state"] + m["reason"]), m
    for x in m["history"]:
        assert not re.search(r"[\x00-\x1f\x7f]", x["reason"] + (
            x["state"] or "")), x

    # HTML: escaped, not markup; no control characters
    status, headers, body = env.h.get("/bbstatus?format=html")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    html = body.decode("utf-8")
    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", html)

    # Prometheus: the state label line is one well-formed line
    status, _, body = env.h.get("/bbstatus?format=prometheus")
    assert status == 200
    text = body.decode("utf-8")
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text)
    mine = [ln for ln in text.split("\n") if f'member="{member}"' in ln]
    assert mine, text
    line_re = re.compile(r'^bbstatus_[a-z_]+\{(?:[a-z_]+="(?:[^"\\]|\\.)*"'
                         r',?)+\} [0-9.eE+-]+$')
    for ln in mine:
        assert line_re.match(ln), ln
    state_lines = [ln for ln in mine if ln.startswith("bbstatus_member_state{")]
    assert state_lines == [
        f'bbstatus_member_state{{balancer="{c.balancer}",member="{member}",'
        f'vhost="127.0.0.1",state="<b>x</b>??[31m"}} 1'], state_lines

    # server-status ?auto: one line per member
    status, _, body = env.h.get("/server-status?auto")
    lines = [ln for ln in body.decode().splitlines()
             if ln.startswith("BBStatusMember: ") and member + " " in ln]
    assert len(lines) == 1, lines
    # values are percent-encoded: one token, decoded back to the state
    states = [urllib.parse.unquote(f[len("state="):])
              for f in lines[0].split(" ") if f.startswith("state=")]
    assert states == ["<b>x</b>??[31m"], lines


# --- an unresolvable host name ------------------------------------------------

def test_unresolvable_member_fails(env):
    m = _hostile_out(env, "balancer://bb-dns", DNS_MEMBER,
                     ("host name does not resolve", DNS_HOST))
    print(f"dns: reason: {m['reason']}")
    _assert_out(m, ("host name does not resolve",), "fail")
    assert m["http_status"] is None and m["state"] is None, m
    assert m["probe_url"] == DNS_MEMBER + "/status", m
    _assert_healthy(env, "balancer://bb-dns", env.node_url("ok_dns"),
                    "/c/dns/", "ok_dns")
    # it failed before any connection: no answer, hence no HTTP status, and
    # no user request went its way (all ten went to the healthy member)
    _assert_httpd_alive(env)


# --- https members ------------------------------------------------------------

def _need_tls(env):
    if env.tls is None:
        pytest.skip(f"no https member cases: {env.no_tls}")


@pytest.mark.parametrize("balancer,prefix,healthy", [
    ("balancer://tls-bad-plain", "/c/tls-bad/", "ok_tls_bad"),
    ("balancer://tls-bad-args", "/c/tls-bad-args/", "ok_tls_bad_args"),
], ids=["plain_section", "section_with_args"])
def test_tls_unverified_certificate_fails(env, balancer, prefix, healthy):
    _need_tls(env)
    url = f"https://127.0.0.1:{env.tls.port}"
    m = _hostile_out(env, balancer, url, ("TLS handshake failed",))
    print(f"{balancer}: reason: {m['reason']}")
    _assert_out(m, ("TLS handshake failed",), "fail")
    # the reason is readable text, e.g. "TLS handshake failed: <why>"
    assert re.fullmatch(r"TLS handshake failed(: [A-Za-z][\w ,.:;()/'-]*)?",
                        m["reason"]), m["reason"]
    for x in m["history"]:
        assert re.fullmatch(
            r"TLS handshake failed(: [A-Za-z][\w ,.:;()/'-]*)?",
            x["reason"]), x
    assert m["http_status"] is None and m["state"] is None, m
    assert m["probe_url"] == url + "/status", m
    _assert_healthy(env, balancer, env.node_url(healthy), prefix, healthy)
    _assert_httpd_alive(env)


def test_tls_verified_certificate_routes(env):
    _need_tls(env)
    url = f"https://127.0.0.1:{env.tls.port}"
    b = "balancer://tls-good"

    def routed():
        m = env.member(b, url)
        return m["decision"] == "route" and m["checks"] >= 2, m
    m = _poll(routed, DECIDE_DEADLINE, "https member routes")
    print(f"tls-good: reason: {m['reason']}")
    assert m["in_rotation"] is True, m
    assert m["state"] == "RUNNING" and m["http_status"] == 200, m
    assert m["failures"] == 0, m
    assert m["reason"] == "state RUNNING (HTTP 200) is in BBStatusRoute", m
    assert m["probe_url"] == url + "/status", m
    assert "/status" in env.tls.seen
    # user traffic goes the same way
    for i in range(3):
        status, headers, body = env.h.get(f"/c/tls-good/t{i}")
        assert status == 200, body
        assert headers.get("x-node") == "tls", headers
    assert "/t0" in env.tls.seen
    _assert_httpd_alive(env)
