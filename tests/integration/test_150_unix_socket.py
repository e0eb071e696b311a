"""Members behind unix sockets: ``BalancerMember unix:/path|http://host/``.

mod_proxy sends a unix-socket member's user traffic over the socket and
uses the URL after the ``|`` only for the Host header and the path; the
probe must go the same way, never to the URL's host and port.  Each test
puts a decoy node on that TCP port which, if asked, says something that
would change the member's fate.
"""

import os
import shutil
import tempfile

import pytest

from httpd import wait_until
from bbs import config, murl, params, records, status_count

PARAMS = params("200ms")


@pytest.fixture
def sockdir():
    # httpd's children (not root) must reach the socket: a 0755 folder of
    # its own, not below pytest's 0700 temporary root
    d = tempfile.mkdtemp(prefix="bbs-uds-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def nodes(sim, sockdir):
    """A node on a unix socket ("u"), a RUNNING TCP node ("r") and the
    decoy ("decoy", STOPPING) on the port the member URL names."""
    return sim([("r", "bitbucket", "RUNNING"),
                ("decoy", "bitbucket", "STOPPING")],
               unix_nodes=[("u", os.path.join(sockdir, "node.sock"),
                            "bitbucket", "RUNNING")])


def start(h, nodes, host_url=None):
    host_url = host_url or f"http://127.0.0.1:{nodes.port('decoy')}/"
    uds = f"unix:{nodes.path('u')}|{host_url}"
    h.start(config([(uds, PARAMS), (murl(nodes, "r"), PARAMS)]))


def uds_member(h):
    recs = records(h)
    found = [m for (_, name), m in recs.items()
             if name != f"http://127.0.0.1:{h._bbs_r_port}"]
    assert len(found) == 1, recs
    return found[0]


def wait_uds(h, pred, deadline, what):
    last = {}

    def probe():
        last["m"] = uds_member(h)
        return last["m"] if pred(last["m"]) else None
    try:
        return wait_until(probe, deadline, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}\nlast record: {last.get('m')}") from None


def test_probe_goes_over_the_socket_not_to_the_decoy(httpd_factory, nodes):
    h = httpd_factory()
    h._bbs_r_port = nodes.port("r")
    start(h, nodes)
    m = wait_uds(h, lambda m: (m.get("checks") or 0) >= 2, 10,
                 "two checks of the unix-socket member")
    assert m["decision"] == "route", m
    assert m["state"] == "RUNNING", m
    assert m["probe_url"] == (f"unix:{nodes.path('u')}|http://127.0.0.1:"
                              f"{nodes.port('decoy')}/status"), m
    assert status_count(nodes, "u") >= 2
    assert status_count(nodes, "decoy") == 0, "the probe went to the TCP decoy"
    # user traffic and the probe agree on where the member is
    seen = set()
    for i in range(10):
        status, hdrs, _ = h.get(f"/app/req{i}")
        assert status == 200
        seen.add(hdrs.get("x-node"))
    assert seen == {"u", "r"}

    # the node on the socket leaves: blocked, its traffic goes to r
    nodes.set("u", state="STOPPING")
    m = wait_uds(h, lambda m: m["decision"] == "block", 5, "block")
    assert m["state"] == "STOPPING" and m["http_status"] == 503, m
    for i in range(10):
        status, hdrs, _ = h.get(f"/app/after{i}")
        assert (status, hdrs.get("x-node")) == (200, "r")
    assert status_count(nodes, "decoy") == 0


@pytest.mark.allow_log(r"AH02454", r"AH00959")
def test_socket_gone_or_refusing_is_a_precise_reason(httpd_factory, nodes,
                                                     sockdir):
    h = httpd_factory()
    h._bbs_r_port = nodes.port("r")
    # nothing at all listens on the URL's port: a probe sent there would
    # read "connection refused" while the node on the socket is RUNNING
    start(h, nodes, host_url="http://localhost/")
    wait_uds(h, lambda m: m["decision"] == "route"
             and m["state"] == "RUNNING", 10, "route over the socket")

    nodes.set("u", mode="refuse")     # bound, not listening
    m = wait_uds(h, lambda m: m["decision"] == "block", 5, "refused")
    assert "refused" in m["reason"] and nodes.path("u") in m["reason"], m

    nodes.set("u", mode="normal")
    wait_uds(h, lambda m: m["decision"] == "route", 5, "back")
