"""Integration tests of the HTML diagnostics page as an administrator sees
it: well-formed HTML5 in every variant (html5lib, strict), content
negotiation, query decoding, ?refresh=, the ?auto lines of server-status,
methods, and the page in a real headless Chromium (Selenium): it fits a
1280 px window with 3 balancers of 10 members and long reasons, wraps at
390 px, applies its styles under its Content-Security-Policy, and follows
a node's change by refreshing itself.

Chromium runs only where it can start; otherwise the browser tests skip
with the reason (make check installs chromium, chromium-driver and
python3-selenium).
"""

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import urllib.parse

import pytest

from httpd import wait_until
from bbs import (BB, deadline_for, find_member, get_json, member_url, params,
                 raw_http, site, wait_member)

html5lib = pytest.importorskip(
    "html5lib", reason="python3-html5lib is not installed "
                       "(scripts/deps.sh check installs it)")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

BADGE_CLASSES = {"route", "standby", "block", "panic", "pending"}
LONG_STATE = "MAINTENANCE_WINDOW_" + "X" * 44          # 63: the longest kept
# the longest reason a record keeps (BBS_REASON_LEN - 1), words and one
# unbreakable run; no node answer leads to one this long, so the browser
# test puts it into the page it was served
LONG_REASON = ("redirect (HTTP 302) to 'https://sso.example.com/login?next="
               + "%2F" * 30 + "' is not followed; " + "word " * 12)[:199]


def assert_html5(body, what):
    """Parse with the WHATWG algorithm, failing on any parse error."""
    parser = html5lib.HTMLParser(strict=True)
    try:
        parser.parse(body)
    except html5lib.html5parser.ParseError as e:
        raise AssertionError(f"{what}: not well-formed HTML5: {e}; "
                             f"errors {parser.errors[:5]}") from None
    return body


def get_page(h, path="/bbstatus", headers=None):
    status, hdrs, body = h.get(path, headers=headers)
    assert status == 200, (path, status, body[:300])
    assert hdrs["Content-Type"].split(";")[0].strip() == "text/html", hdrs
    return hdrs, assert_html5(body.decode("utf-8"), path)


def style_hash(page):
    """sha256-<base64> of the page's one <style> block, as CSP writes it."""
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert len(styles) == 1, styles
    digest = hashlib.sha256(styles[0].encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode()


# --- 1. HTML5 in every variant ---------------------------------------------

def test_every_page_variant_is_wellformed_html5(env):
    start_nodes, make = env
    nodes = start_nodes([("r", "bitbucket", "RUNNING"),
                         ("s", "bitbucket", "STOPPING"),
                         ("m", "bitbucket", "MAINTENANCE"),
                         ("x", "bitbucket", "RUNNING"),
                         ("g", "bitbucket", "RUNNING"),
                         ("k", "bitbucket", "RUNNING"),
                         ("p", "bitbucket", "RUNNING")])
    nodes.set("x", mode="custom", custom={
        "status": 200, "content_type": "application/json",
        "body": json.dumps({"state": "<script>x</script>\"&'</td>"})})
    r, s, m, x, k = (member_url(nodes.port(n)) for n in "rsmxk")
    h = make()
    sticky = (f"<Proxy balancer://sticky>\n"
              f"    BalancerMember {k} {params('200ms')} route=k1\n"
              f"    ProxySet stickysession=ROUTEID\n</Proxy>\n"
              f"ProxyPass /st balancer://sticky/\n")
    # balancer://later: its member is Stopped, so never checked (pending)
    h.start(site(
        (BB, [(nodes.port("r"), params("200ms")),
              (nodes.port("s"), params("200ms")),
              (nodes.port("m"), params("200ms")),
              (nodes.port("x"), params("200ms")),
              (nodes.port("g"), "hcmethod=GET hcinterval=1 hcuri=/status")]),
        ("balancer://later", [(nodes.port("p"), "hcmethod=BBSTATUS "
                               "hcinterval=30 hcpasses=1 hcfails=1 "
                               "status=+S")]),
        extra=sticky))
    dl = deadline_for(0.2)
    for url, want in ((r, "route"), (s, "block"), (m, "standby"),
                      (x, "block")):
        wait_member(h, url, lambda mm, w=want: mm["decision"] == w, dl,
                    f"{url} {want}")
    nodes.set("s", state="RUNNING")
    wait_member(h, s, lambda mm: mm["decision"] == "route", dl,
                "s routed again (history of two changes)")

    for path in ("/bbstatus", "/bbstatus?format=html", "/bbstatus?refresh=5",
                 "/bbstatus?format=html&refresh=1"):
        hdrs, page = get_page(h, path)
        assert "<script" not in page.lower(), page
        assert "&lt;script&gt;x&lt;/script&gt;" in page
        for url in (r, s, m, x, k, member_url(nodes.port("p"))):
            assert f'data-member="{url}"' in page, url
        assert "sticky: yes" in page
        assert "1 pending" in page
        # the member's row carries its decision as a badge
        assert re.search(rf'data-member="{re.escape(s)}".*?'
                         r'<span class="d route">route</span>', page, re.S)
    # the page of a virtual host without a balancer
    h2 = make()
    h2.start("<Location /bbstatus>\n    SetHandler bbstatus\n</Location>\n")
    _, page = get_page(h2)
    assert "No balancer" in page


def test_old_member_cell_is_rejected_by_the_parser():
    """The parser check catches the unclosed <small> the page used to
    send (the check is not one that cannot fail)."""
    old = ("<!DOCTYPE html>\n<html><head><title>t</title></head><body>"
           "<table><tr><td>http://a<br><small>http://a/status</td>"
           "<td>x</td></tr></table></body></html>")
    with pytest.raises(AssertionError, match="not well-formed"):
        assert_html5(old, "old page")


# --- 2. summary, badges, draining -------------------------------------------

def test_summary_line_and_draining_member(env):
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("b", "bitbucket", "RUNNING"),
                         ("c", "bitbucket", "STOPPING"),
                         ("d", "bitbucket", "MAINTENANCE")])
    a, b, c, d = (member_url(nodes.port(n)) for n in "abcd")
    h = make()
    h.start(site((BB, [(nodes.port("a"), params("200ms")),
                         (nodes.port("b"), params("200ms") + " status=N"),
                         (nodes.port("c"), params("200ms")),
                         (nodes.port("d"), params("200ms"))])))
    dl = deadline_for(0.2)
    for url, want in ((a, "route"), (b, "route"), (c, "block"),
                      (d, "standby")):
        wait_member(h, url, lambda mm, w=want: mm["decision"] == w, dl,
                    f"{url} {want}")
    doc = get_json(h)
    mb = find_member(doc, BB, b)
    assert "Drn" in mb["flags"].split(), mb
    assert mb["in_rotation"] is False, \
        f"a draining member gets no new requests: {mb}"
    # the standby member is not chosen while a is usable
    assert find_member(doc, BB, d)["in_rotation"] is False

    _, page = get_page(h)
    assert re.search(r"1 of 4 members serving</span> &middot; 1 standby "
                     r"&middot; 1 blocked &middot; <span>panic: no</span>",
                     page), page
    status, _, body = h.get("/bbstatus?format=prometheus")
    assert status == 200
    assert re.search(rf'^bbstatus_member_in_rotation\{{balancer="{BB}",'
                     rf'member="{re.escape(b)}",vhost="127.0.0.1"\}} 0$',
                     body.decode(), re.M)


# --- 3. negotiation, query, refresh ------------------------------------------

ACCEPT_CASES = [
    (None, "html"),
    ("application/json", "json"),
    ("application/json;q=0", "html"),
    ("text/html, application/json;q=0.1", "html"),
    ("application/json, text/html;q=0.5", "json"),
    ("text/html;q=0.5, application/*", "json"),
    ("*/*", "html"),
    ("application/json;q=0.0, */*;q=0.1", "html"),
    ("APPLICATION/JSON ; Q=0.9", "json"),
    ("application/json;q=1.5", "html"),
    ("text/html;q=0, application/json;q=0.001", "json"),
    ("text/html,application/xhtml+xml,application/xml;q=0.9,"
     "image/avif,image/webp,*/*;q=0.8", "html"),
]


def test_accept_negotiation(env):
    start_nodes, make = env
    nodes = start_nodes([("r", "bitbucket", "RUNNING")])
    h = make()
    h.start(site((BB, [(nodes.port("r"), params("1", 2, 2))])))
    for accept, want in ACCEPT_CASES:
        status, hdrs, body = h.get(
            "/bbstatus", headers={"Accept": accept} if accept else {})
        assert status == 200, (accept, body[:200])
        ctype = hdrs["Content-Type"].split(";")[0].strip()
        assert ctype == {"html": "text/html",
                         "json": "application/json"}[want], (accept, ctype)
        vary = [v.strip().lower() for v in hdrs.get("Vary", "").split(",")]
        assert "accept" in vary, (accept, hdrs)


def test_query_is_percent_decoded_and_refresh(env):
    start_nodes, make = env
    nodes = start_nodes([("r", "bitbucket", "RUNNING")])
    h = make()
    h.start(site((BB, [(nodes.port("r"), params("1", 2, 2))])))
    for query in ("format=%6Ason", "%66ormat=json", "format=js%6fn&x=%20"):
        doc = get_json(h, f"/bbstatus?{query}")
        assert doc["module"] == "mod_bbstatus", query
    for query in ("format=j%zzon", "format=json+", "format",
                  "refresh=0", "refresh=abc", "refresh=86401",
                  "refresh=-1", "refresh=5x"):
        status, _, body = h.get(f"/bbstatus?{query}")
        assert status == 400, (query, status, body[:200])
    # the format is asked for in the URL: Accept plays no part
    status, hdrs, _ = h.get("/bbstatus?format=json",
                            headers={"Accept": "text/html"})
    assert status == 200
    assert hdrs["Content-Type"].startswith("application/json")

    hdrs, page = get_page(h, "/bbstatus?refresh=7")
    assert hdrs.get("Refresh") == "7", hdrs
    assert "refreshed every 7 s" in page
    gen = re.search(r"Generated <time>([^<]+)</time>", page)
    assert gen, page
    hdrs, page = get_page(h, "/bbstatus")
    assert "Refresh" not in hdrs, hdrs
    assert re.search(r"Generated <time>\d{4}-\d\d-\d\dT[\d:.]+Z</time>", page)


# --- 4. methods: what README says ---------------------------------------------

def test_methods_as_documented(env):
    start_nodes, make = env
    nodes = start_nodes([("r", "bitbucket", "RUNNING")])
    h = make()
    h.start(site((BB, [(nodes.port("r"), params("1", 2, 2))])))
    # httpd core answers TRACE itself (TraceEnable on, the default)
    raw = raw_http(h.port, b"TRACE /bbstatus HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Connection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    assert b"message/http" in raw, raw[:400]
    status, hdrs, _ = h.get("/bbstatus", method="POST", body=b"x")
    assert status == 405
    allow = {m.strip() for m in hdrs["Allow"].split(",")}
    assert {"GET", "HEAD"} <= allow and "POST" not in allow, allow
    assert "TRACE" in allow, allow

    h2 = make()
    h2.start(site((BB, [(nodes.port("r"), params("1", 2, 2))]),
                    extra="TraceEnable off\n"))
    raw = raw_http(h2.port, b"TRACE /bbstatus HTTP/1.1\r\n"
                            b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 405"), raw[:200]
    status, hdrs, _ = h2.get("/bbstatus", method="DELETE")
    assert status == 405
    allow = {m.strip() for m in hdrs["Allow"].split(",")}
    assert "TRACE" not in allow and "GET" in allow, allow


# --- 5. server-status ?auto cannot be spoofed ---------------------------------

def auto_pairs(line):
    """The documented parse: split on spaces, each pair at the first '=',
    percent-decode."""
    head, _, rest = line.partition(": ")
    fields = rest.split(" ")
    pairs = [f.split("=", 1) for f in fields[2:]]
    assert all(len(p) == 2 for p in pairs), line
    keys = [k for k, _ in pairs]
    return (head, urllib.parse.unquote(fields[0]),
            urllib.parse.unquote(fields[1]), keys,
            {k: urllib.parse.unquote(v) for k, v in pairs})


def test_server_status_auto_values_are_encoded(env):
    start_nodes, make = env
    spoof = "ERROR decision=route in_rotation=1 state=RUNNING"
    nodes = start_nodes([("e", "bitbucket", "RUNNING"),
                         ("r", "bitbucket", "RUNNING")])
    nodes.set("e", mode="custom", custom={
        "status": 200, "content_type": "application/json",
        "body": json.dumps({"state": spoof})})
    e, r = member_url(nodes.port("e")), member_url(nodes.port("r"))
    h = make()
    h.start(site((BB, [(nodes.port("e"), params("200ms")),
                         (nodes.port("r"), params("200ms"))])))
    dl = deadline_for(0.2)
    wait_member(h, e, lambda m: m["decision"] == "block", dl, "e blocked")
    wait_member(h, r, lambda m: m["decision"] == "route", dl, "r routed")
    status, _, body = h.get("/server-status?auto")
    assert status == 200
    lines = [x for x in body.decode().splitlines()
             if x.startswith("BBStatusMember:")]
    assert len(lines) == 2, body
    want_keys = ["decision", "in_rotation", "in_rotation_sticky", "state",
                 "http_status", "checks", "failures", "latency_ms", "reason",
                 "vhost"]
    parsed = {}
    for line in lines:
        head, bal, name, keys, values = auto_pairs(line)
        assert keys == want_keys, line
        assert bal == BB, line
        parsed[name] = values
        # not even a search for " key=" finds a second one
        for k in want_keys:
            assert len(re.findall(rf"(?:^| ){k}=", line)) == 1, (k, line)
    pe, pr = parsed[e], parsed[r]
    assert (pe["decision"], pe["in_rotation"], pe["state"]) == \
        ("block", "0", spoof), pe
    assert spoof in pe["reason"], pe
    assert (pr["decision"], pr["state"]) == ("route", "RUNNING"), pr
    assert pr["reason"] == "state RUNNING (HTTP 200) is in BBStatusRoute", pr
    # plain values stay as they were
    assert f" state=RUNNING " in [x for x in lines if r in x][0]


# --- 6. the page in Chromium --------------------------------------------------

def chromium(tmp_path):
    """A headless Chromium through chromedriver, or a skip saying why it
    cannot start here."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as e:
        pytest.skip(f"python3-selenium is not installed ({e}); "
                    f"scripts/deps.sh check installs it")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            pytest.skip(f"{path} is missing: apt-get install chromium "
                        f"chromium-driver (scripts/deps.sh check)")
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--window-size=1280,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(CHROMEDRIVER, log_output=subprocess.DEVNULL) \
        if "log_output" in Service.__init__.__code__.co_varnames \
        else Service(CHROMEDRIVER, log_path=os.devnull)
    try:
        return webdriver.Chrome(service=service, options=opts)
    except Exception as e:  # WebDriverException and friends
        pytest.skip(f"Chromium cannot start here: {str(e).splitlines()[0]}")


def viewport(driver, width, height, mobile=False):
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1,
        "mobile": mobile})
    assert driver.execute_script("return window.innerWidth") == width


def rows_of(driver):
    """{member: (displayed, badge text, badge right edge)} of the page."""
    return driver.execute_script("""
        const out = {};
        for (const tr of document.querySelectorAll('tr.m')) {
            const b = tr.querySelector('.d');
            const r = b.getBoundingClientRect();
            const t = tr.getBoundingClientRect();
            out[tr.dataset.member] = [t.width > 0 && t.height > 0
                && getComputedStyle(tr).visibility === 'visible',
                b.innerText.trim(), r.right, r.width > 0 && r.height > 0];
        }
        return out;""")


def csp_errors(driver):
    return [e["message"] for e in driver.get_log("browser")
            if "Content Security Policy" in e["message"]
            or "Content-Security-Policy" in e["message"]]


def test_page_in_chromium(env, tmp_path):
    start_nodes, make = env
    balancers, specs, kinds = [], [], {}
    # per balancer: 4 routed, 2 standby, 2 blocked with a 63-character
    # state, 1 failing on a redirect, 1 hcmethod=GET
    plan = ["RUNNING"] * 4 + ["MAINTENANCE"] * 2 + [LONG_STATE] * 2 + \
        ["redirect", "get"]
    for bi in range(3):
        for mi, kind in enumerate(plan):
            name = f"b{bi}m{mi}"
            specs.append((name, "bitbucket",
                          kind if kind not in ("redirect", "get")
                          else "RUNNING"))
            kinds[name] = kind
    driver = None
    nodes = start_nodes(specs)
    try:
        for name, kind in kinds.items():
            if kind == "redirect":
                nodes.set(name, mode="redirect")
        for bi in range(3):
            members = []
            for mi in range(len(plan)):
                name = f"b{bi}m{mi}"
                members.append((nodes.port(name),
                                "hcmethod=GET hcinterval=1 hcuri=/status"
                                if kinds[name] == "get"
                                else params("200ms")))
            balancers.append((f"balancer://bal{bi}", members))
        h = make()
        h.start(site(*balancers, to=balancers[0][0], extra=(
            "<Location /bbstatus-nostyle>\n    SetHandler bbstatus\n"
            "    Header always set Content-Security-Policy "
            "\"default-src 'none'\"\n</Location>\n"
            "ProxyPass /bbstatus-nostyle !\n")))

        def all_decided():
            doc = get_json(h)
            ms = [m for b in doc["balancers"] for m in b["members"]
                  if "decision" in m]
            return doc if ms and all(m["decision"] != "pending"
                                     for m in ms) else None
        doc = wait_until(all_decided, deadline_for(0.2, 5),
                         what="every member checked")
        want = {}
        for b in doc["balancers"]:
            for m in b["members"]:
                want[m["name"]] = m.get("decision", "GET")
        assert len(want) == 30
        longest = max(len(m.get("reason", "")) for b in doc["balancers"]
                      for m in b["members"])
        assert longest >= 100, longest

        hdrs, page = get_page(h, "/bbstatus?refresh=1")
        csp = hdrs["Content-Security-Policy"]
        assert "default-src 'none'" in csp, csp
        assert f"style-src '{style_hash(page)}'" in csp, \
            f"the style block's hash is not the one in the policy: {csp}"

        driver = chromium(tmp_path)
        viewport(driver, 1280, 1000)
        driver.get(h.url("/bbstatus?refresh=1"))
        assert driver.execute_script(
            "return document.querySelectorAll('tr.m').length") == 30
        width = driver.execute_script(
            "return document.documentElement.scrollWidth")
        assert width <= 1280, f"scrolls sideways at 1280 px: {width}"
        rows = rows_of(driver)
        assert set(rows) == set(want), sorted(set(rows) ^ set(want))
        for name, (shown, text, right, badge_shown) in rows.items():
            assert shown and badge_shown, name
            assert text == want[name], (name, text, want[name])
            assert right <= 1280, (name, right)
        # the longest reason a record can hold, in every reason line and
        # history entry of the page as served
        assert len(LONG_REASON) == 199
        driver.execute_script("""
            for (const td of document.querySelectorAll('tr.r td'))
                td.firstChild.textContent = arguments[0];
            for (const li of document.querySelectorAll('tr.r li'))
                li.textContent = arguments[0];
            for (const d of document.querySelectorAll('tr.r details'))
                d.open = true;""", LONG_REASON)
        width = driver.execute_script(
            "return document.documentElement.scrollWidth")
        assert width <= 1280, \
            f"scrolls sideways at 1280 px with 199-character reasons: {width}"
        driver.get(h.url("/bbstatus?refresh=1"))
        # the styles apply under the page's own policy
        colour = driver.execute_script(
            "return getComputedStyle(document.querySelector("
            "'.d.route')).backgroundColor")
        assert colour == "rgb(198, 239, 198)", colour
        assert csp_errors(driver) == []
        shot = os.environ.get("BBS_SCREENSHOT")
        if shot:
            driver.save_screenshot(shot)

        # a state change at a node shows without anyone reloading
        target = member_url(nodes.port("b1m0"))
        before = driver.execute_script(
            "return document.querySelector('time').textContent")
        nodes.set("b1m0", state="STOPPING")

        def badge_now():
            try:
                return driver.execute_script(
                    "const tr = document.querySelector("
                    f"'tr.m[data-member=\"{target}\"]');"
                    "return tr ? tr.querySelector('.d').innerText : null")
            except Exception:   # the page is being replaced
                return None
        wait_until(lambda: badge_now() == "block", deadline_for(1.2, 4),
                   interval=0.2, what="the block of b1m0 in the browser")
        assert driver.execute_script(
            "return document.querySelector('time').textContent") != before

        # a phone: items wrap, nothing overflows
        viewport(driver, 390, 844, mobile=True)
        driver.get(h.url("/bbstatus"))
        width = driver.execute_script(
            "return document.documentElement.scrollWidth")
        assert width <= 390, f"scrolls sideways at 390 px: {width}"
        for name, (shown, text, right, badge_shown) in \
                rows_of(driver).items():
            assert shown and badge_shown and text, name
            assert right <= 390, (name, right)
        if shot:
            root, ext = os.path.splitext(shot)
            driver.save_screenshot(f"{root}-390{ext}")

        # the browser does enforce a policy: one without the hash leaves
        # the page unstyled and says so (the check above can fail)
        viewport(driver, 1280, 1000)
        driver.get_log("browser")
        driver.get(h.url("/bbstatus-nostyle"))
        colour = driver.execute_script(
            "return getComputedStyle(document.querySelector("
            "'.d.route')).backgroundColor")
        assert colour == "rgba(0, 0, 0, 0)", colour
        assert csp_errors(driver), "no CSP report for a blocked style"
    finally:
        if driver is not None:
            driver.quit()
