"""The shipped conf.d examples, loaded as they are: only the addresses,
ports and certificate paths are substituted, so that the README's
examples and what is tested cannot drift apart.

Each runs behind its TLS virtual host while users browse, some with a
route cookie pinned to each node and some without, and every node is
restarted in turn (STOPPING, refused, STARTING, RUNNING): no GET may fail.
"""

import collections
import json
import os
import re
import shutil
import time

import pytest

from bbs import REFUSED_LOGS, SSL_BUILD_LOG, Load, connection, make_cert
from httpd import REPO, module_load_error, wait_until

EXAMPLES = os.path.join(REPO, "conf.d")

# what each example is: its file, the nodes' flavour and addresses as the
# file writes them, the context path of the member URLs, where the nodes
# answer their state, a request path the site proxies, and the cookie that
# pins a user to a route
SITES = {
    "bitbucket": dict(
        file="bitbucket-balancer.conf.example", flavor="bitbucket",
        members={"node1": "10.0.0.11:7990", "node2": "10.0.0.12:7990"},
        context="", status_path="/status", path="/projects",
        cookie=lambda route: f"ROUTEID=.{route}",
        host="bitbucket.example.com"),
    "jira": dict(
        file="jira-balancer.conf.example", flavor="jira",
        members={"jira1": "10.0.0.21:8080", "jira2": "10.0.0.22:8080"},
        context="/jira", status_path="/jira/status", path="/jira/browse",
        cookie=lambda route: f"JSESSIONID=0F1E2D.{route}",
        host="jira.example.com"),
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
    for route, addr in site["members"].items():
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


def members(port):
    doc = tls_json(port, "/bbstatus?format=json")
    return {m["name"]: m for b in doc["balancers"] for m in b["members"]}


@pytest.mark.allow_log(SSL_BUILD_LOG, *REFUSED_LOGS)
@pytest.mark.parametrize("name", sorted(SITES))
def test_example_rolling_restart_loses_no_get(env, name):
    site = SITES[name]
    openssl = shutil.which("openssl")
    if not openssl or module_load_error("ssl"):
        pytest.skip(module_load_error("ssl") or "no openssl command")
    start_nodes, make = env
    routes = sorted(site["members"])
    nodes = start_nodes([(r, site["flavor"], "RUNNING") for r in routes])
    for r in routes:
        nodes.set(r, status_path=site["status_path"])
    h = make(extra_modules=("ssl", "socache_shmcb"))
    certs = os.path.join(h.root, "certs")
    os.makedirs(certs, exist_ok=True)
    crt, key = make_cert(openssl, certs, name, site["host"],
                         dns=site["host"], ca=False)
    included = os.path.join(h.conf_dir, site["file"] + ".conf")
    with open(included, "w") as f:
        f.write(example_text(site, {r: nodes.port(r) for r in routes},
                             "@PORT@", crt, key).replace(
                                 "@PORT@", str(h.port)))
    h.start(f"SSLSessionCache shmcb:{h.run_dir}/ssl_scache(512000)\n"
            f"Include {included}\n")
    urls = {f"http://127.0.0.1:{nodes.port(r)}{site['context']}"
            for r in routes}

    def all_route():
        got = members(h.port)
        return got if {u for u, m in got.items()
                       if m.get("decision") == "route"
                       and m.get("in_rotation")} >= urls else None
    # hcinterval=5 as the example has it: first checks are spread over it
    wait_until(all_route, 20, interval=0.2, what="both members routed")

    # users: two without a route, two pinned to each node
    loads = {"no route": Load(h.port, site["path"], threads=2, rate=20,
                              tls=True)}
    for r in routes:
        loads[f"pinned to {r}"] = Load(
            h.port, site["path"], threads=2, rate=20, tls=True,
            headers={"Cookie": site["cookie"](r)})
    for load in loads.values():
        load.start()
    try:
        time.sleep(1.0)
        for r in routes:
            nodes.script(r, [list(s) for s in RESTART])
            nodes.wait_script(r, timeout=15)
            # a rolling restart waits for the node to serve again
            wait_until(all_route, 30, interval=0.2,
                       what=f"{r} back in rotation")
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
