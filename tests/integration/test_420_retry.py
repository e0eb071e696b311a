"""Failed requests: the early re-probe and the retry of what a leaving
node answered (BBStatusRetry), against a real apache2 and simulated
Atlassian nodes.

Times are compared on one clock: the simulator's request log and
``status_times`` are ``time.time()`` on the same machine. Measured values
are printed (run with ``-s``) and named in every assertion message.
"""

import collections
import socket
import statistics
import time

import pytest

from httpd import DIAG, MPMS, wait_until
from simnode import SimNodes
from test_400_standby import (FAILING_RUNNING, brief, diag, is_, murl,
                              port_first_checked, wait_members)

BB = "balancer://bb"
REFUSED_LOGS = (r"AH00957", r"AH00959", r"AH01114")


@pytest.fixture
def env(tmp_path, httpd_factory):
    """``(start_nodes, httpd_factory)``; the simulators stop after the
    httpd instances (this fixture is set up first, torn down last)."""
    made = []

    def start_nodes(specs):
        nodes = SimNodes.start(nodes=list(specs), tmpdir=str(tmp_path))
        made.append(nodes)
        return nodes

    yield start_nodes, httpd_factory
    for nodes in made:
        nodes.stop()


def params(interval="10", extra=""):
    p = f"hcmethod=BBSTATUS hcinterval={interval} hcpasses=1 hcfails=1"
    return p + (" " + extra if extra else "")


def config(members, section="", head=""):
    lines = [head, f"<Proxy {BB}>"]
    lines += [f"    BalancerMember {u} {p}" for u, p in members]
    lines += ["    " + x for x in section.strip().splitlines()]
    lines.append("</Proxy>")
    return "\n".join(lines) + "\n" + DIAG + f"ProxyPass / {BB}/\n"


def ms(seconds):
    return round(seconds * 1000.0, 1)


# --- 1. a failed request wakes the checker at once ------------------------

@pytest.mark.parametrize("mpm", MPMS)
def test_failed_request_probed_within_milliseconds(env, mpm):
    start_nodes, make = env
    interval_ms = 10000
    # the first scheduled check early: the next one is ~10 s away, so
    # every probe measured here is an out-of-turn one
    port = port_first_checked(200, 900, interval_ms)
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
