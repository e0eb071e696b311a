"""What the integration tests share: member URLs and configuration of
mod_bbstatus balancers, the JSON diagnostics and waits on them, traffic
through the proxy and the balancer-manager's forms.

The fixtures (``sim``, ``env``, ``httpd_factory``) are in conftest.py.
"""

import collections
import html
import html.parser
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

from httpd import DIAG, graceful_timeout, wait_until

BB = "balancer://bb"

# what a loaded 2-core machine may add to a deadline (process scheduling)
SLACK = 0.5

# under concurrent load a request that picked a member just before a check
# or another request put it out finds it unusable when it asks for a
# connection (AH00940) or once connected (AH01114: mod_proxy drops that
# connection); the balancer then fails the request over to another member
OUT_UNDER_LOAD_LOGS = (r"AH00940", r"AH01114")
# a refused connection makes mod_proxy log these at error level (AH01114
# also when no member is left to serve the request)
REFUSED_LOGS = (r"AH00957", r"AH00959") + OUT_UNDER_LOAD_LOGS

# a node whose every page fails while /status says it is fine
FAILING_RUNNING = {"status": 503, "content_type": "application/json",
                   "body": '{"state":"RUNNING"}'}


# --- configuration ---------------------------------------------------------

def module_loglevel(config):
    """LogLevel of mod_bbstatus: env BBS_LOGLEVEL, else trace4 with -vv,
    debug with -v, else none."""
    env = os.environ.get("BBS_LOGLEVEL")
    if env:
        return env
    verbose = config.getoption("verbose", 0)
    if verbose >= 2:
        return "trace4"
    if verbose >= 1:
        return "debug"
    return None


def member_url(port):
    return f"http://127.0.0.1:{port}"


def murl(nodes, name, path=""):
    """URL of simulated node ``name`` (a SimNodes) on 127.0.0.1."""
    return member_url(nodes.port(name)) + path


def params(interval="1", passes=1, fails=1, extra=""):
    p = (f"hcmethod=BBSTATUS hcinterval={interval} hcpasses={passes} "
         f"hcfails={fails}")
    return p + (" " + extra if extra else "")


def balancer(name, members, section=""):
    """<Proxy> section.  ``name``: "bb" or "balancer://bb"; ``members``:
    "url params" lines or (url or port, params) pairs; ``section``: more
    lines inside (ProxySet ...)."""
    if "://" not in name:
        name = f"balancer://{name}"
    lines = [f"<Proxy {name}>"]
    for m in members:
        if not isinstance(m, str):
            url, p = m
            m = f"{member_url(url) if isinstance(url, int) else url} {p}"
        lines.append(f"    BalancerMember {m}")
    lines += ["    " + x for x in section.strip().splitlines()]
    lines.append("</Proxy>")
    return "\n".join(lines) + "\n"


def site(*sections, head="", extra="", to=BB):
    """``head``, the sections, the diagnostics, ``extra``, then the
    catch-all ProxyPass to balancer ``to`` (none if it is None).  A section
    given as (name, members) is a balancer; each one after the first is
    mounted at /lb<i>."""
    body, mounts = head + "\n", ""
    for i, s in enumerate(sections):
        if isinstance(s, tuple):
            body += balancer(*s)
            if i:
                mounts += f"ProxyPass /lb{i} {s[0]}/\n"
        else:
            body += s
    body += DIAG + extra + mounts
    if to:
        body += f"ProxyPass / {to if '://' in to else 'balancer://' + to}/\n"
    return body


def config(members, head="", section=""):
    """One balancer bb with ``members`` ((url, params) pairs), the
    diagnostics, then the catch-all ProxyPass."""
    return site(balancer(BB, members, section), head=head)


# mod_ssl at start-up when this system's OpenSSL is older than the one
# Debian's mod_ssl was built with (a point release apart)
SSL_BUILD_LOG = (r"\[ssl:warn\] .* AH01882: Init: this version of mod_ssl "
                 r"was compiled against a newer library")


def make_cert(openssl, directory, name, cn, dns="localhost", ca=True):
    """A self-signed certificate for 127.0.0.1 and ``dns``, with ``ca``
    also its own CA (a node a probe verifies against it), without a
    site's: (certificate path, key path) in ``directory``."""
    key = os.path.join(directory, f"{name}.key")
    crt = os.path.join(directory, f"{name}.pem")
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
         "-out", crt, "-days", "2", "-subj", f"/CN={cn}",
         "-addext", f"subjectAltName=IP:127.0.0.1,DNS:{dns}",
         "-addext", "basicConstraints=critical,CA:"
         + ("TRUE" if ca else "FALSE")],
        check=True, capture_output=True, timeout=60)
    for p in (key, crt):
        os.chmod(p, 0o644)
    return crt, key


# --- requests and the diagnostics ------------------------------------------

def get(port, path, headers=None, method="GET", timeout=None, body=None):
    """(status, {header: value}, body) of one request to 127.0.0.1:port;
    header names in lower case.  The default timeout is graceful_timeout(),
    as for Httpd.get(): any request may follow a graceful restart."""
    if timeout is None:
        timeout = graceful_timeout()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return (resp.status, {k.lower(): v for k, v in resp.getheaders()},
                resp.read())
    finally:
        conn.close()


def raw_http(port, request_bytes, timeout=5):
    """Send raw bytes, read until the server closes; -> bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request_bytes)
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def get_json(h, path="/bbstatus?format=json", headers=None):
    """The JSON document at ``path`` of ``h`` (an Httpd or a port)."""
    status, hdrs, body = get(getattr(h, "port", h), path, headers=headers,
                             timeout=graceful_timeout(getattr(h, "mpm",
                                                              None)))
    assert status == 200, body[:500]
    ctype = hdrs.get("content-type", "")
    assert ctype.split(";")[0].strip().lower() == "application/json", ctype
    return json.loads(body.decode("utf-8"))


def records(h):
    """{(balancer, member): record} from the JSON diagnostics of ``h``
    (an Httpd or a port)."""
    doc = get_json(h)
    assert doc["module"] == "mod_bbstatus", doc
    return {(b["name"], m["name"]): m
            for b in doc["balancers"] for m in b["members"]}


def diag(h, balancer=BB):
    """{member url: record} of one balancer from the JSON diagnostics."""
    recs = records(h)
    if not any(b == balancer for b, _ in recs):
        raise AssertionError(f"no {balancer} in {sorted(recs)}")
    return {m: rec for (b, m), rec in recs.items() if b == balancer}


def find_member(doc, balancer, name):
    for b in doc["balancers"]:
        if b["name"] == balancer:
            for m in b["members"]:
                if m["name"] == name:
                    return m
            raise AssertionError(f"no member {name} in {balancer}: "
                                 f"{[m['name'] for m in b['members']]}")
    raise AssertionError(f"no balancer {balancer}: "
                         f"{[b['name'] for b in doc['balancers']]}")


def member(h, url, balancer=BB):
    recs = records(h)
    key = (balancer, url)
    assert key in recs, f"{key} not in diagnostics: {sorted(recs)}"
    return recs[key]


def brief(m):
    """The interesting fields of a record, for assertion messages."""
    keys = ("state", "decision", "in_rotation", "flags", "checks",
            "failures", "interval_ms", "reason")
    return {k: m.get(k) for k in keys}


def wait_member(h, url, pred, deadline, what=None, balancer=BB):
    """Poll the member's record until pred(record) holds; returns it."""
    last = {}

    def probe():
        last["m"] = member(h, url, balancer)
        return last["m"] if pred(last["m"]) else None
    try:
        return wait_until(probe, deadline,
                          what=what or f"{url} in {balancer}")
    except AssertionError as e:
        raise AssertionError(f"{e}\nlast record of {url}: "
                             f"{json.dumps(last.get('m'), indent=1)}") \
            from None


def wait_members(h, preds, deadline, what, balancer=BB):
    """Poll the diagnostics until pred(record) holds for every
    {url: pred}; returns the records."""
    last = {}

    def probe():
        recs = diag(h, balancer)
        last.update(recs)
        return recs if all(p(recs[u]) for u, p in preds.items()) else None
    try:
        return wait_until(probe, deadline, interval=0.05, what=what)
    except AssertionError as e:
        raise AssertionError(
            f"{e}\nlast records: "
            f"{json.dumps({u: brief(m) for u, m in last.items()}, indent=1)}"
        ) from None


def deadline_for(interval_s, k=3):
    """Generous: several test runs may share this 2-core machine."""
    return k * interval_s + 4


def checked(n=1):
    return lambda m: (m.get("checks") or 0) >= n


def decided(decision, n=1):
    return lambda m: (m.get("checks") or 0) >= n \
        and m.get("decision") == decision


def is_(decision, state=None, checks=1):
    def pred(m):
        return ((m.get("checks") or 0) >= checks
                and m.get("decision") == decision
                and (state is None or m.get("state") == state))
    return pred


def status_count(nodes, name, path="/status"):
    return nodes.node(name)["counts"]["by_path"].get(path, 0)


def ms(seconds):
    return round(seconds * 1000.0, 1)


# --- traffic through the proxy ---------------------------------------------

def traffic(h, n=20, path="/app/req", headers=None):
    """n requests through the proxy, one after the other; returns
    (Counter of X-Node (None: no node answered), [(status, node)])."""
    seen = collections.Counter()
    answers = []
    for i in range(n):
        status, hdrs, _ = h.get(f"{path}{i}", headers=headers)
        node = hdrs.get("x-node")
        seen[node] += 1
        answers.append((status, node))
    return seen, answers


def connection(port, tls=False, timeout=5):
    """An HTTP/1.1 connection to 127.0.0.1:port; with tls, over TLS
    without verifying the test's self-signed certificate."""
    if not tls:
        return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                       context=ctx)


class Load:
    """Requests through the proxy from ``threads`` threads, each on its
    own keep-alive connection, until stop().  With ``rate`` the threads
    together send about that many requests per second.

    ``results``: (t_sent, t_done, status, x-node or None) per completed
    request, times from time.time().  ``headers``: sent with every request
    (a route cookie); ``tls``: over TLS, the certificate not verified."""

    def __init__(self, port, path="/app/load", threads=8, rate=None,
                 headers=None, tls=False):
        self.port = port
        self.path = path
        self.headers = dict(headers or {})
        self.tls = tls
        self.threads = threads
        self.period = threads / rate if rate else 0.0
        self.results = []
        self.errors = collections.Counter()
        self._stop = threading.Event()
        self._pool = []
        self.started = self.stopped = None

    def start(self):
        self.started = time.time()
        for i in range(self.threads):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self._pool.append(t)
        return self

    def stop(self):
        self._stop.set()
        for t in self._pool:
            t.join(10)
        self.stopped = time.time()
        return self

    def rate(self):
        span = (self.stopped or time.time()) - self.started
        return len(self.results) / span if span > 0 else 0.0

    def since(self, t):
        """Results of requests sent at or after t."""
        return [r for r in self.results if r[0] >= t]

    def _run(self, idx):
        conn = None
        due = time.monotonic()
        i = 0
        while not self._stop.is_set():
            if self.period:
                now = time.monotonic()
                if now < due:
                    time.sleep(due - now)
                # no burst to catch up after a stall
                due = max(due + self.period, time.monotonic() - self.period)
            i += 1
            if conn is None:
                conn = connection(self.port, self.tls, timeout=10)
            t0 = time.time()
            try:
                conn.request("GET", f"{self.path}?t{idx}-{i}",
                             headers=self.headers)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException) as e:
                self.errors[type(e).__name__] += 1
                conn.close()
                conn = None
                continue
            self.results.append((t0, time.time(), resp.status,
                                 resp.getheader("X-Node")))
            if resp.will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()


# --- balancer-manager ------------------------------------------------------

class Form(html.parser.HTMLParser):
    """Fields a browser would submit from the page's (first) form."""

    def __init__(self):
        super().__init__()
        self.action = None
        self.fields = {}
        self.options = {}
        self._select = None
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and self.action is None:
            self._in_form = True
            self.action = a.get("action")
        if not self._in_form:
            return
        if tag == "input":
            name, typ = a.get("name"), (a.get("type") or "text").lower()
            if not name or typ == "submit":
                return
            if typ in ("radio", "checkbox"):
                if "checked" in a:
                    self.fields[name] = a.get("value", "on")
            else:
                self.fields[name] = a.get("value", "")
        elif tag == "select":
            self._select = a.get("name")
            self.options[self._select] = []
        elif tag == "option" and self._select:
            self.options[self._select].append(a.get("value"))
            if "selected" in a or self._select not in self.fields:
                self.fields[self._select] = a.get("value")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "form":
            self._in_form = False


def manager(h, query=""):
    status, _, body = h.get("/balancer-manager" + query, headers={
        "Referer": h.url("/balancer-manager")})
    assert status == 200, body
    return body.decode("utf-8", "replace")


def edit_form(h, worker_url):
    page = manager(h)
    links = [html.unescape(l)
             # single quotes in older releases (2.4.37)
             for l in re.findall(r'href=["\'](/balancer-manager\?[^"\']*)'
                                 r'["\']', page)]
    link = next((l for l in links
                 if urllib.parse.parse_qs(urllib.parse.urlsplit(l).query)
                 .get("w") == [worker_url]), None)
    assert link, f"no edit link for {worker_url} in:\n{page}"
    form = Form()
    form.feed(manager(h, link[len("/balancer-manager"):]))
    assert form.action, "no form on the worker page"
    return form


def post_balancer(h, balancer_name, changes):
    """Submits the balancer-manager form of a balancer (its settings:
    b_max for maxattempts, b_sforce for nofailover, ...) as a browser
    would, with ``changes`` made to it; returns the fields."""
    page = manager(h)
    links = [html.unescape(l)
             for l in re.findall(r'href=["\'](/balancer-manager\?[^"\']*)'
                                 r'["\']', page)]
    name = balancer_name.split("://")[-1]

    def is_balancer_link(l):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(l).query)
        return q.get("b") == [name] and "w" not in q
    link = next((l for l in links if is_balancer_link(l)), None)
    assert link, f"no edit link for {balancer_name} in:\n{page}"
    form = Form()
    form.feed(manager(h, link[len("/balancer-manager"):]))
    assert form.action, "no form on the balancer page"
    fields = dict(form.fields)
    fields.update(changes)
    status, _, resp = h.get(form.action, method="POST",
                            body=urllib.parse.urlencode(fields), headers={
                                "Content-Type":
                                    "application/x-www-form-urlencoded",
                                "Referer": h.url("/balancer-manager")})
    assert status in (200, 302, 303), resp
    return fields


def post_member(h, worker_url, changes):
    """Submits the balancer-manager form of a member as a browser would,
    with ``changes`` ({field: value}) made to it; returns the fields."""
    form = edit_form(h, worker_url)
    fields = dict(form.fields)
    fields.update(changes)
    body = urllib.parse.urlencode(fields)
    status, _, resp = h.get(form.action, method="POST", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded",
        "Referer": h.url("/balancer-manager")})
    assert status in (200, 302, 303), resp
    return fields
