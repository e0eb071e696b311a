"""The flags the module sets over a member's life: across graceful and
hard restarts, balancer-manager edits and requests mod_proxy failed over,
against a real apache2 and simulated Atlassian nodes.

The scenarios reuse the fixtures and helpers of test_400_standby.py.
"""

import pytest

from httpd import wait_until
from test_400_standby import (  # noqa: F401 (fixtures)
    REFUSED_LOGS, brief, config, diag, env, is_, murl, params,
    port_first_checked, sim, traffic, wait_members)


# --- 1. every restart re-derives the flags --------------------------------

@pytest.mark.parametrize("mpm", ["event", "worker", "prefork"])
def test_standby_flag_survives_graceful_and_restart(env, mpm):
    start_nodes, make = env
    # a long interval, with both first checks early in it: after a
    # restart the flags must come back from the records, not from a check
    # that happens to run
    ports = [port_first_checked(100, 1500, 30000) for _ in range(3)]
    nodes = start_nodes([("r", "bitbucket", "RUNNING", ports[0]),
                         ("s", "bitbucket", "STARTING", ports[1]),
                         ("x", "bitbucket", "STOPPING", ports[2])])
    r, s, x = (murl(nodes, n) for n in "rsx")
    h = make(mpm=mpm)
    h.start(config([(u, params("30")) for u in (r, s, x)]))
    wait_members(h, {r: is_("route", "RUNNING"),
                     s: is_("standby", "STARTING"),
                     x: is_("block", "STOPPING")}, 8,
                 "r route, s standby, x block")

    for kind in ("graceful", "restart"):
        checks = {u: m["checks"] for u, m in diag(h).items()}
        getattr(h, kind)()
        # at once: the new generation's children start with the flags
        seen, answers = traffic(h, 20)
        recs = diag(h)
        print(f"\n{mpm} {kind}: traffic {dict(seen)}; s {brief(recs[s])}")
        assert seen == {"r": 20}, (kind, answers, brief(recs[s]))
        assert nodes.requests("s") == [] and nodes.requests("x") == [], kind
        m = recs[s]
        assert m["decision"] == "standby" and m["in_rotation"] is False, \
            (kind, brief(m))
        assert "Stby" in m["flags"], (kind, brief(m))
        m = recs[x]
        assert m["decision"] == "block" and m["in_rotation"] is False, \
            (kind, brief(m))
        assert "HcFl" in m["flags"], (kind, brief(m))
        m = recs[r]
        assert m["decision"] == "route" and m["in_rotation"] is True, \
            (kind, brief(m))
        # the flags came from the records: no check ran in between
        assert all(recs[u]["checks"] == checks[u] for u in (r, s, x)), \
            (kind, {u: brief(m) for u, m in recs.items()})
