"""A probe whose connect() this host's policy denies says so.

On RHEL, SELinux's targeted policy denies httpd_t a connect to a port not
labelled http_port_t: connect() fails with EACCES, and the member's reason
must point there (README, Install on RHEL) instead of "Permission denied".
This machine has no SELinux. A `prohibit` route gives the same errno on
connect(), so the test runs its httpd in a network namespace of its own
(`unshare --net`) where the member's address has such a route; the
machine's own routes are never touched.

The test starts a second pytest in that namespace on connect_denied_netns.py,
whose test runs only there (env BBS_NETNS_PROHIBITED names the address)."""

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# TEST-NET-1 (RFC 5737): never routed anywhere, prohibited in the namespace
DENIED = "192.0.2.1"
ENV = "BBS_NETNS_PROHIBITED"


def _netns_problem():
    if os.geteuid() != 0:
        return "a network namespace with its own routes needs root"
    for tool in ("unshare", "ip"):
        if not shutil.which(tool):
            return f"no {tool} (util-linux, iproute2)"
    r = subprocess.run(["unshare", "--net", "true"], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        return ("unshare --net is not allowed here: "
                + (r.stderr.strip() or f"rc {r.returncode}"))
    return None


def test_denied_connect_names_selinux_in_the_diagnostics(tmp_path):
    why = _netns_problem()
    if why:
        pytest.skip(why)
    inner = os.path.join(HERE, "connect_denied_netns.py")
    script = (f"ip link set lo up && ip route add prohibit {DENIED}/32 && "
              f'exec "$0" -m pytest -q -p no:cacheprovider -rs '
              f'--basetemp="$1" "$2"')
    env = dict(os.environ, **{ENV: DENIED})
    r = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, sys.executable,
         str(tmp_path / "inner"), inner],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    # one test, run and passed: a skip inside would hide the point
    assert r.returncode == 0 and "1 passed" in out \
        and "skipped" not in out, out
