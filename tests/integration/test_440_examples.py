"""The shipped conf.d examples, loaded as they are: only the addresses,
ports and certificate paths are substituted, so that the README's
examples and what is tested cannot drift apart.

Each runs behind its TLS virtual host while users browse, some with a
route cookie pinned to each node and some without, and every node is
restarted in turn (STOPPING, refused, STARTING, RUNNING): no GET may fail.
Then what each product does of its own: Bamboo's status URL and PAUSED,
Jira's reindex (MAINTENANCE with HTTP 503), Confluence's Synchrony checked
by its heartbeat with stock mod_proxy_hcheck beside the application.
"""

import collections
import json
import os
import re
import shutil
import time

import pytest

from bbs import (REFUSED_LOGS, SSL_BUILD_LOG, Load, connection, get_json,
                 make_cert, site as bbs_site)
from httpd import (MODULES_DIR, REPO, compiled_in_modules, module_load_error,
                   wait_until)

EXAMPLES = os.path.join(REPO, "conf.d")

# what each example is: its file, its balancer, the nodes' flavour and
# addresses as the file writes them, the context path of the member URLs,
# where the nodes answer their state, a request path the site proxies, the
# cookie that pins a user to a route, and optionally other addresses of a
# node (Confluence's Synchrony: {address: route}) and the modules the
# example's header says to enable beside bbstatus, ssl and headers
SITES = {
    "bitbucket": dict(
        file="bitbucket-balancer.conf.example", flavor="bitbucket",
        balancer="balancer://bitbucket",
        members={"node1": "10.0.0.11:7990", "node2": "10.0.0.12:7990"},
        context="", status_path="/status", path="/projects",
        cookie=lambda route: f"ROUTEID=.{route}",
        host="bitbucket.example.com"),
    "jira": dict(
        file="jira-balancer.conf.example", flavor="jira",
        balancer="balancer://jira",
        members={"jira1": "10.0.0.21:8080", "jira2": "10.0.0.22:8080"},
        context="/jira", status_path="/jira/status", path="/jira/browse",
        cookie=lambda route: f"JSESSIONID=0F1E2D.{route}",
        host="jira.example.com"),
    "bamboo": dict(
        file="bamboo-balancer.conf.example", flavor="bamboo",
        balancer="balancer://bamboo",
        members={"bamboo1": "10.0.0.31:8085", "bamboo2": "10.0.0.32:8085"},
        context="", status_path="/rest/api/latest/status",
        path="/browse/PROJ-PLAN", cookie=lambda route: f"ROUTEID=.{route}",
        host="bamboo.example.com"),
    "crowd": dict(
        file="crowd-balancer.conf.example", flavor="crowd",
        balancer="balancer://crowd",
        members={"crowd1": "10.0.0.41:8095", "crowd2": "10.0.0.42:8095"},
        context="/crowd", status_path="/crowd/status",
        path="/crowd/console/login.action",
        cookie=lambda route: f"ROUTEID=.{route}",
        host="crowd.example.com"),
    "confluence": dict(
        file="confluence-balancer.conf.example", flavor="confluence",
        balancer="balancer://confluence",
        members={"node1": "10.0.0.51:8090", "node2": "10.0.0.52:8090"},
        also={"10.0.0.51:8091": "node1", "10.0.0.52:8091": "node2"},
        modules=("rewrite", "proxy_wstunnel"),
        context="", status_path="/status", path="/display/DOC/Home",
        cookie=lambda route: f"ROUTEID=.{route}",
        host="confluence.example.com"),
}

# each node's restart: as in make bench, shorter
RESTART = (("STOPPING", 1.5), ("STOPPED", 1.5), ("STARTING", 2.0),
           ("RUNNING", 0.0))


def example_text(site, ports, port, crt, key):
    """The example file with addresses, ports and certificates replaced."""
    with open(os.path.join(EXAMPLES, site["file"])) as f:
        text = f.read()
    text, n = re.subn(r"<VirtualHost \*:443>",
                      f"<VirtualHost 127.0.0.1:{port}>", text)
    assert n == 1, f"{site['file']}: no <VirtualHost *:443>"
    for addr, route in [(a, r) for r, a in site["members"].items()] \
            + list(site.get("also", {}).items()):
        assert addr in text, f"{site['file']}: no member {addr}"
        text = text.replace(addr, f"127.0.0.1:{ports[route]}")
    text, n = re.subn(r"SSLCertificateFile \S+", f"SSLCertificateFile {crt}",
                      text)
    assert n == 1, f"{site['file']}: no SSLCertificateFile"
    text, n = re.subn(r"SSLCertificateKeyFile \S+",
                      f"SSLCertificateKeyFile {key}", text)
    assert n == 1, f"{site['file']}: no SSLCertificateKeyFile"
    return text


def tls_json(port, path):
    conn = connection(port, tls=True)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, body[:300]
        return json.loads(body)
    finally:
        conn.close()


def members(port, balancer):
    """{member url: record} of one balancer of the diagnostics."""
    doc = tls_json(port, "/bbstatus?format=json")
    return {m["name"]: m for b in doc["balancers"] if b["name"] == balancer
            for m in b["members"]}


def tls_get(port, path, headers=None):
    """(status, X-Node, body) of one GET over TLS."""
    conn = connection(port, tls=True)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.getheader("X-Node"), resp.read()
    finally:
        conn.close()


def start_site(env, name, states=None):
    """The example ``name`` running behind TLS in front of its simulated
    nodes (RUNNING unless ``states`` says {route: state}), once every
    member routes: (httpd, nodes, site, {route: member url})."""
    site = SITES[name]
    openssl = shutil.which("openssl")
    if not openssl or module_load_error("ssl"):
        pytest.skip(module_load_error("ssl") or "no openssl command")
    for m in site.get("modules", ()):
        # mod_proxy_wstunnel loads only after mod_proxy: no load test alone
        if m not in compiled_in_modules() and not os.path.exists(
                os.path.join(MODULES_DIR, f"mod_{m}.so")):
            pytest.skip(f"no mod_{m} in {MODULES_DIR}")
    start_nodes, make = env
    routes = sorted(site["members"])
    nodes = start_nodes([(r, site["flavor"], (states or {}).get(r, "RUNNING"))
                         for r in routes])
    for r in routes:
        nodes.set(r, status_path=site["status_path"])
    h = make(extra_modules=("ssl", "socache_shmcb",
                            *site.get("modules", ())))
    certs = os.path.join(h.root, "certs")
    os.makedirs(certs, exist_ok=True)
    crt, key = make_cert(openssl, certs, name, site["host"],
                         dns=site["host"], ca=False)
    included = os.path.join(h.conf_dir, site["file"] + ".conf")
    with open(included, "w") as f:
        f.write(example_text(site, {r: nodes.port(r) for r in routes},
                             "@PORT@", crt, key).replace(
                                 "@PORT@", str(h.port)))
    body = (f"SSLSessionCache shmcb:{h.run_dir}/ssl_scache(512000)\n"
            f"Include {included}\n")
    rc, out = h.configtest(body)
    assert rc == 0 and "Syntax OK" in out, out
    h.start(body)
    urls = {r: f"http://127.0.0.1:{nodes.port(r)}{site['context']}"
            for r in routes}
    if not states:
        wait_routed(h, site, urls.values())
    return h, nodes, site, urls


def wait_routed(h, site, urls, deadline=20):
    """Wait until every member of ``urls`` routes and is in rotation."""
    def all_route():
        got = members(h.port, site["balancer"])
        return got if {u for u, m in got.items()
                       if m.get("decision") == "route"
                       and m.get("in_rotation")} >= set(urls) else None
    # hcinterval=5 as the example has it: first checks are spread over it
    return wait_until(all_route, deadline, interval=0.2,
                      what="every member routed")


def wait_record(h, balancer, url, pred, what, deadline=20):
    last = {}

    def probe():
        last["m"] = members(h.port, balancer).get(url)
        return last["m"] if last["m"] and pred(last["m"]) else None
    try:
        return wait_until(probe, deadline, interval=0.2, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}\nlast record: {last.get('m')}") from None


@pytest.mark.allow_log(SSL_BUILD_LOG, *REFUSED_LOGS)
@pytest.mark.parametrize("name", sorted(SITES))
def test_example_rolling_restart_loses_no_get(env, name):
    h, nodes, site, urls = start_site(env, name)
    routes = sorted(site["members"])

    # users: two without a route, two pinned to each node
    loads = {"no route": Load(h.port, site["path"], threads=2, rate=20,
                              tls=True)}
    for r in routes:
        loads[f"pinned to {r}"] = Load(
            h.port, site["path"], threads=2, rate=20, tls=True,
            headers={"Cookie": site["cookie"](r)})
    for load in loads.values():
        load.start()
    # Bitbucket's and Jira's examples go through a whole rolling restart;
    # the other products' (the same balancer shape, other probe URLs and
    # states) through one node's restart, to keep the suite's time down
    restarted = routes if name in ("bitbucket", "jira") else routes[:1]
    try:
        time.sleep(1.0)
        for r in restarted:
            nodes.script(r, [list(s) for s in RESTART])
            nodes.wait_script(r, timeout=15)
            # a rolling restart waits for the node to serve again
            wait_routed(h, site, urls.values(), deadline=30)
        time.sleep(1.0)
    finally:
        for load in loads.values():
            load.stop()
    report = {}
    for who, load in loads.items():
        answers = collections.Counter((s, n) for _, _, s, n in load.results)
        report[who] = (dict(answers), dict(load.errors))
    print(f"\n{name}: {json.dumps({k: str(v) for k, v in report.items()})}")
    for who, load in loads.items():
        assert len(load.results) > 50, (who, report[who])
        failed = [(s, n) for _, _, s, n in load.results if s != 200]
        assert not failed and not load.errors, (who, report[who])
    # users pinned to a node are back on it once it serves again
    for r in routes:
        late = [n for t, _, s, n in loads[f"pinned to {r}"].results
                if t > loads[f"pinned to {r}"].stopped - 0.8]
        assert late and set(late) == {r}, (r, late)


def node_counts(nodes, route, path):
    return nodes.node(route)["counts"]["by_path"].get(path, 0)


def spread(port, path, n=40, headers=None):
    """{X-Node: count} of n GETs; every one must answer 200."""
    got = collections.Counter()
    for _ in range(n):
        status, node, body = tls_get(port, path, headers)
        assert status == 200, (status, node, body[:200])
        got[node] += 1
    return got


@pytest.mark.allow_log(SSL_BUILD_LOG)
def test_bamboo_paused_stays_in_rotation(env):
    h, nodes, site, urls = start_site(env, "bamboo")
    # the checks ask Bamboo's status URL, never /status
    for r in urls:
        assert node_counts(nodes, r, "/rest/api/latest/status") >= 1
        assert node_counts(nodes, r, "/status") == 0
    # an administrator pauses the server: builds stop, the UI serves on
    for r in urls:
        nodes.set(r, state="PAUSED")
    for r, u in urls.items():
        m = wait_record(h, site["balancer"], u,
                        lambda m: m.get("state") == "PAUSED",
                        f"{r} checked PAUSED")
        assert m["decision"] == "route" and m["in_rotation"], m
        assert "in BBStatusRoute" in m["reason"], m
    assert set(spread(h.port, "/browse/PROJ-PLAN")) == set(urls)
    # a PAUSED node beside a RUNNING one is no standby: both serve
    nodes.set("bamboo2", state="RUNNING")
    wait_record(h, site["balancer"], urls["bamboo2"],
                lambda m: m.get("state") == "RUNNING", "bamboo2 RUNNING")
    m = members(h.port, site["balancer"])[urls["bamboo1"]]
    assert m["decision"] == "route" and m["in_rotation"], m
    assert set(spread(h.port, "/browse/PROJ-PLAN")) == set(urls)
    # any other state leaves at once
    nodes.set("bamboo1", state="STOPPING")
    m = wait_record(h, site["balancer"], urls["bamboo1"],
                    lambda m: m.get("decision") == "block",
                    "bamboo1 blocked")
    assert not m["in_rotation"], m
    assert set(spread(h.port, "/browse/PROJ-PLAN", n=20)) == {"bamboo2"}


@pytest.mark.allow_log(SSL_BUILD_LOG)
def test_jira_reindex_maintenance_503_is_standby(env):
    h, nodes, site, urls = start_site(env, "jira")
    # start-up delayed by a reindex: MAINTENANCE with HTTP 503
    nodes.set("jira1", state="MAINTENANCE")
    m = wait_record(h, site["balancer"], urls["jira1"],
                    lambda m: m.get("decision") == "standby",
                    "jira1 standby")
    assert m["state"] == "MAINTENANCE" and "HTTP 503" in m["reason"], m
    assert not m["in_rotation"] and "HcFl" not in m["flags"], m
    # users without a route, and those pinned to jira1, go to jira2
    assert set(spread(h.port, "/jira/browse", n=20)) == {"jira2"}
    assert set(spread(h.port, "/jira/browse", n=10, headers={
        "Cookie": site["cookie"]("jira1")})) == {"jira2"}
    # the whole cluster reindexing: the standby member serves (its
    # maintenance page, 503 from Jira itself)
    nodes.set("jira2", state="ERROR")
    m = wait_record(h, site["balancer"], urls["jira2"],
                    lambda m: m.get("decision") == "block", "jira2 blocked")
    assert m["state"] == "ERROR" and "HTTP 500" in m["reason"], m
    m = wait_record(h, site["balancer"], urls["jira1"],
                    lambda m: m.get("in_rotation"), "jira1 in rotation")
    assert m["decision"] == "standby", m
    status, node, _ = tls_get(h.port, "/jira/browse")
    assert (status, node) == (503, "jira1")
    # the reindex done: jira1 RUNNING routes as before
    nodes.set("jira1", state="RUNNING")
    wait_routed(h, site, [urls["jira1"]])


@pytest.mark.allow_log(SSL_BUILD_LOG)
def test_confluence_synchrony_by_heartbeat_beside_bbstatus(env):
    h, nodes, site, urls = start_site(env, "confluence")

    def synchrony(balancer):
        return {u: m for u, m in members(h.port, balancer).items()}

    def heartbeats(r):
        return node_counts(nodes, r, "/synchrony/heartbeat")
    # stock mod_proxy_hcheck checks Synchrony's heartbeat on both of its
    # balancers; the module checks /status of the application
    wait_until(lambda: all(heartbeats(r) >= 2 for r in urls), 20,
               interval=0.2, what="heartbeat checks")
    for r in urls:
        assert node_counts(nodes, r, "/status") >= 1
    spread(h.port, "/synchrony/v1/data", n=10)

    # Synchrony on node1 goes down, Confluence runs on
    nodes.set("node1", synchrony=False)
    before = {r: heartbeats(r) for r in urls}

    def node1_out():
        got = {tls_get(h.port, "/synchrony/v1/data")[:2] for _ in range(10)}
        return got if got == {(200, "node2")} else None
    # hcfails=2 at hcinterval=5: out after two failed checks (until then
    # node1's Synchrony answers 503 itself)
    wait_until(node1_out, 20, interval=0.5, what="Synchrony of node1 out")
    assert heartbeats("node1") > before["node1"]
    # both of Synchrony's balancers, the WebSocket one too, took node1's
    # member out by its heartbeat: stock mod_proxy_hcheck's HcFl
    for scheme, b in (("http", "balancer://synchrony-http"),
                      ("ws", "balancer://synchrony-ws")):
        got = synchrony(b)
        down = got[f"{scheme}://127.0.0.1:{nodes.port('node1')}"]
        up = got[f"{scheme}://127.0.0.1:{nodes.port('node2')}"]
        assert down["hcmethod"] == "GET" and "HcFl" in down["flags"], got
        assert not down["in_rotation"] and up["in_rotation"], got
    # the editor's WebSocket goes through mod_proxy_wstunnel's balancer
    status, node, _ = tls_get(h.port, "/synchrony/v1/bayeux-sync1", {
        "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert node == "node2", (status, node)
    wanted = f"http://127.0.0.1:{nodes.port('node1')}"
    # the application balancer is unaffected: both members route
    recs = wait_routed(h, site, urls.values(), deadline=1)
    assert set(spread(h.port, "/display/DOC/Home")) == set(urls), recs
    assert wanted in recs
    # back up: node1's Synchrony serves again
    nodes.set("node1", synchrony=True)
    wait_until(lambda: set(spread(h.port, "/synchrony/v1/data", n=10))
               == set(urls), 20, interval=0.5, what="Synchrony of node1 back")


@pytest.mark.allow_log(r"BBS0030")
def test_bbstatus_at_a_synchrony_heartbeat_says_why(env):
    """A BBSTATUS member pointed at a heartbeat fails every check, and its
    balancer goes into panic with one warning, as before; the reason says
    to check it with hcmethod=GET and hcexpr."""
    start_nodes, make = env
    nodes = start_nodes([("s1", "confluence", "RUNNING")])
    h = make()
    bal = "balancer://syn"
    url = f"http://127.0.0.1:{nodes.port('s1')}"
    h.start(bbs_site((bal, [(nodes.port("s1"),
                             "hcmethod=BBSTATUS hcinterval=200ms hcfails=1 "
                             "hcpasses=1 hcuri=/synchrony/heartbeat")]),
                     to=bal))

    def panic():
        for b in get_json(h)["balancers"]:
            for m in b["members"]:
                if b["name"] == bal and m["name"] == url \
                        and m.get("decision") == "panic":
                    return m
        return None
    m = wait_until(panic, 10, interval=0.1, what="the member in panic")
    assert 'body "OK" (HTTP 200) is a heartbeat, not a /status answer: ' \
        "check it with hcmethod=GET and hcexpr (see README)" in m["reason"], m
    time.sleep(0.5)
    assert len(re.findall(r"BBS0030", h.error_log())) == 1, h.error_log()
