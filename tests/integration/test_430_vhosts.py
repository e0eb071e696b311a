"""Balancers inside virtual hosts, as deployments and the shipped conf.d
examples have them: what the diagnostics show, and from where.

The bbstatus handler shows the balancers of the virtual host that serves
it (as balancer-manager, which edits them); the server-status section
shows every balancer of the server (as mod_status's scoreboard), each
labelled with its virtual host. A host without balancers says where they
are instead of looking like a server without members.
"""

import re
import urllib.parse

from bbs import balancer, get_json, murl, params
from httpd import DIAG, wait_until

# Debian's layout: status.conf and the module's bbstatus.conf put their
# <Location>s in the main server, 000-default is the first virtual host
# of the address, the site with the balancer comes after it
GLOBAL_LOCATIONS = """
<Location /server-status>
    SetHandler server-status
</Location>
<Location /bbstatus>
    SetHandler bbstatus
</Location>
"""


def debian_like(members, main_balancer=None):
    body = GLOBAL_LOCATIONS
    if main_balancer:
        body += main_balancer
    body += ("<VirtualHost 127.0.0.1:@PORT@>\n"
             "    ServerName default.test\n</VirtualHost>\n"
             "<VirtualHost 127.0.0.1:@PORT@>\n"
             "    ServerName bitbucket.test\n")
    if members:
        body += balancer("bb", members)
    body += DIAG
    body += "ProxyPass / balancer://bb/\n</VirtualHost>\n"
    return body


def wait_decisions(h, want, host):
    """Poll the JSON diagnostics of virtual host ``host`` until every
    {member: decision} of ``want`` holds."""
    def ok():
        doc = get_json(h, "/bbstatus?format=json", headers={"Host": host})
        got = {m["name"]: m.get("decision") for x in doc["balancers"]
               for m in x["members"]}
        return all(got.get(u) == d for u, d in want.items())
    wait_until(ok, 8, what=f"{want} in {host}")


def auto_lines(h, host):
    status, _, body = h.get("/server-status?auto", headers={"Host": host})
    assert status == 200, body
    text = body.decode()
    count = re.findall(r"^BBStatusMembers: (\d+)$", text, re.M)
    members = {}
    for line in text.splitlines():
        if line.startswith("BBStatusMember:"):
            fields = line.split(" ")
            pairs = dict(f.split("=", 1) for f in fields[3:])
            members[urllib.parse.unquote(fields[2])] = {
                k: urllib.parse.unquote(v) for k, v in pairs.items()}
    return int(count[0]), members


def test_vhost_balancer_shown_from_every_host(env):
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING"),
                         ("b", "bitbucket", "STOPPING")])
    a, b = murl(nodes, "a"), murl(nodes, "b")
    h = make()
    h.start(debian_like([(a, params("1")), (b, params("1"))]))
    site = f"bitbucket.test:{h.port}"
    bb_host = {"Host": "bitbucket.test"}
    wait_decisions(h, {a: "route", b: "block"}, "bitbucket.test")

    # server-status, from the default host (where agents scrape) and
    # from the site: every balancer of the server, with its host
    for host in ("default.test", "bitbucket.test", "127.0.0.1"):
        n, members = auto_lines(h, host)
        assert n == 2 and set(members) == {a, b}, (host, members)
        assert {m["vhost"] for m in members.values()} == {site}, members
        assert members[a]["decision"] == "route", members
        assert members[b]["decision"] == "block", members
    status, _, page = h.get("/server-status")
    assert status == 200 and f"<td>{site}</td>" in page.decode(), page

    # the handler on the default host: no balancer, and where they are
    doc = get_json(h, "/bbstatus?format=json")
    assert doc["balancers"] == [] and doc["other_virtual_hosts"] == [site], doc
    status, _, prom = h.get("/bbstatus?format=prometheus")
    assert status == 200
    assert f"# balancers of virtual host {site} are listed" in prom.decode()
    assert "bbstatus_member_in_rotation{" not in prom.decode(), prom
    status, _, html = h.get("/bbstatus")
    assert "Balancers are defined in virtual host " + site in html.decode()

    # ... and in the site: its balancer, labelled
    doc = get_json(h, "/bbstatus?format=json", headers=bb_host)
    assert [x["virtual_host"] for x in doc["balancers"]] == [site], doc
    assert doc["other_virtual_hosts"] == [], doc
    status, _, prom = h.get("/bbstatus?format=prometheus", headers=bb_host)
    assert (f'bbstatus_member_in_rotation{{balancer="balancer://bb",'
            f'member="{a}",vhost="{site}"}} 1') in prom.decode(), prom


def test_inherited_balancer_listed_once_where_defined(env):
    """A balancer of the main server that a virtual host uses is one
    balancer: server-status lists its members once, under the main
    server."""
    start_nodes, make = env
    nodes = start_nodes([("a", "bitbucket", "RUNNING")])
    a = murl(nodes, "a")
    h = make()
    h.start(debian_like(None, main_balancer=balancer(
        "bb", [(a, params("1"))])))
    wait_decisions(h, {a: "route"}, "bitbucket.test")
    n, members = auto_lines(h, "default.test")
    assert n == 1 and set(members) == {a}, members
    assert members[a]["vhost"] == "127.0.0.1", members
    # and the site that uses it shows it as its own
    doc = get_json(h, "/bbstatus?format=json",
                   headers={"Host": "bitbucket.test"})
    assert [m["name"] for x in doc["balancers"] for m in x["members"]] == [a]
