"""Parameters of every scenario, the configurations compared, and small
helpers (percentiles, number formatting, /proc readers, one-shot HTTP)."""

import os
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
HERE = BENCH             # bench/: plot.gp lives there

# The bench runs httpd and the simulated nodes with the test harness
for _path in (os.path.join(REPO, "tests", "nodes"),
              os.path.join(REPO, "tests", "integration")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------

HC_INTERVAL = 1          # seconds, every configuration
HC_PASSES = 2
HC_FAILS = 2
RATE = 300               # requests/s of the steady load
USER_PATH = "/rest/api/1.0/projects"   # what users ask for (not /status)
# The users of the rolling restart, one kind per request in turn: half
# without a cookie, the other half split evenly over the nodes, each
# request carrying Cookie: ROUTEID=.n1 (.n2, .n3), as the browsers of
# logged-in users of a sticky Jira or Bitbucket do.
ROLLING_USERS = ("", "n1", "", "n2", "", "n3")
MAINT_PATH = "/mvc/maintenance"
SCENARIOS = ("rolling", "backup", "detection", "overhead", "scale", "memory",
             "rejoin")

CONFIG_ORDER = ("bbstatus", "bbstatus-plain", "get-status", "get-expr",
                "get-projects", "tcp", "haproxy", "haproxy-retry", "nginx")
STOCK = ("get-status", "get-expr", "get-projects", "tcp")
# other proxies, in rolling, backup and detection only (bbsbench/peers.py)
PEERS = ("haproxy", "haproxy-retry", "nginx")
# the rejoin scenario's configurations (bbsbench/rejoin.py): the warm-up
# ramp and HAProxy's slowstart run there only
REJOIN_ORDER = ("bbstatus", "bbstatus-warmup", "haproxy-slowstart", "nginx",
                "get-expr")
REJOIN_ONLY = ("bbstatus-warmup", "haproxy-slowstart")
WARMUP = 30              # seconds: BBStatusWarmup and HAProxy's slowstart

# The states the ProxyHCExpr configuration routes: what a stock setup can
# do that comes closest to the module (route running/first run/maintenance,
# keep starting nodes out, because stock has no hot-standby verdict).
EXPR_STATES = "RUNNING|FIRST_RUN|MAINTENANCE"
EXPR_LINE = ("ProxyHCExpr bbstate {hc('body') =~ "
             "/\"state\" *: *\"(" + EXPR_STATES + ")\"/}")

CONFIGS = {
    "bbstatus": dict(
        label="BBSTATUS", module=True, method="hcmethod=BBSTATUS",
        extra="", head="",
        text="`hcmethod=BBSTATUS` (module defaults: `BBStatusStandby "
             "STARTING MAINTENANCE`, `BBStatusReprobeInterval 250ms`)"),
    "bbstatus-plain": dict(
        label="BBSTATUS, standby/re-probe off", module=True,
        method="hcmethod=BBSTATUS",
        extra="BBStatusStandby none\nBBStatusReprobeInterval 0", head="",
        text="`hcmethod=BBSTATUS` with `BBStatusStandby none` and "
             "`BBStatusReprobeInterval 0`"),
    "get-status": dict(
        label="stock GET /status", module=False,
        method="hcmethod=GET hcuri=/status", extra="", head="",
        text="stock `hcmethod=GET hcuri=/status` (2xx/3xx passes)"),
    "get-expr": dict(
        label="stock GET /status + ProxyHCExpr", module=False,
        method="hcmethod=GET hcuri=/status hcexpr=bbstate", extra="",
        head=EXPR_LINE,
        text="stock `hcmethod=GET hcuri=/status hcexpr=bbstate` with `"
             + EXPR_LINE + "`"),
    "get-projects": dict(
        label="stock GET /projects", module=False,
        method="hcmethod=GET hcuri=/projects", extra="", head="",
        text="stock `hcmethod=GET hcuri=/projects` (the setup in "
             "Atlassian's backup-client article)"),
    "tcp": dict(
        label="stock TCP", module=False, method="hcmethod=TCP", extra="",
        head="", text="stock `hcmethod=TCP` (connect only)"),
    "haproxy": dict(
        label="HAProxy", module=False, peer="haproxy", retry=False,
        text="HAProxy 2.6: `option httpchk` GET /status, `http-check "
             "expect rstring` on the state (the states above), `inter 1s "
             "fastinter 100ms rise 1 fall 1 observe layer7 error-limit 1 "
             "on-error mark-down`"),
    "haproxy-retry": dict(
        label="HAProxy + retries", module=False, peer="haproxy", retry=True,
        text="the same + `retry-on 503 conn-failure empty-response "
             "response-timeout`, `retries 2`, `option redispatch 1`, no "
             "layer-7 retry for other methods than GET/HEAD/OPTIONS"),
    "bbstatus-warmup": dict(
        label=f"BBSTATUS + BBStatusWarmup {WARMUP}s", module=True,
        method="hcmethod=BBSTATUS", extra=f"BBStatusWarmup {WARMUP}s",
        head="",
        text=f"`hcmethod=BBSTATUS` with `BBStatusWarmup {WARMUP}s` (floor "
             "at its default, 5% of the member's share); rejoin scenario "
             "only"),
    "haproxy-slowstart": dict(
        label=f"HAProxy slowstart {WARMUP}s", module=False, peer="haproxy",
        retry=False, slowstart=WARMUP,
        text=f"the HAProxy configuration + `slowstart {WARMUP}s` on every "
             "server (its weight grows from almost 0 to full over "
             f"{WARMUP} s after it comes back); rejoin scenario only"),
    "nginx": dict(
        label="nginx", module=False, peer="nginx", retry=False,
        text="nginx 1.22: `max_fails=1 fail_timeout=1s`, "
             "`proxy_next_upstream error timeout http_502 http_503 "
             "http_504` (no active check in nginx without the commercial "
             "subscription)"),
}

# Log lines a run is expected to produce (refused connects of nodes that
# are stopped, panic when every node fails) -- others are reported.
EXPECTED_LOG = (r"AH00957", r"AH00959", r"AH01114", r"AH00940", r"AH01102",
                r"AH01097", r"AH10187", r"BBS0030", r"AH01095", r"AH00898",
                r"AH02429", r"AH01110", r"AH03303", r"AH03302", r"AH01170")

FULL = dict(
    rolling_nodes=("n1", "n2", "n3"), rolling_settle=3.5, warmup=2.0,
    backup_window=10.0, backup_rate=10,
    detect_flips=7,
    detect_runs=(("bbstatus", 1), ("bbstatus-plain", 1), ("get-status", 1),
                 ("bbstatus", 5), ("bbstatus-plain", 5),
                 ("haproxy", 1), ("haproxy-retry", 1), ("nginx", 1)),
    overhead_pairs=4, overhead_seconds=8, overhead_warmup=2,
    overhead_rounds=10,
    scale_members=1000, scale_procs=4, scale_balancers=10,
    scale_warmup=6.0, scale_window=30.0, scale_samples=15,
    idle_window=20.0, memory_checks=100_000,
    rejoin_steady=4.0, rejoin_window=60.0,
)
QUICK = dict(
    rolling_nodes=("n2",), rolling_settle=3.5, warmup=2.0,
    backup_window=6.0, backup_rate=10,
    detect_flips=2,
    detect_runs=(("bbstatus", 1), ("bbstatus-plain", 1), ("bbstatus", 5)),
    overhead_pairs=2, overhead_seconds=3, overhead_warmup=1,
    overhead_rounds=2,
    scale_members=200, scale_procs=1, scale_balancers=2,
    scale_warmup=4.0, scale_window=10.0, scale_samples=5,
    idle_window=8.0, memory_checks=10_000,
    rejoin_steady=3.0, rejoin_window=30.0,
)

# Restart of one node, the way Bitbucket/Jira go through a graceful restart.
RESTART_STEPS = (("STOPPING", 3.0), ("STOPPED", 3.0), ("STARTING", 4.0),
                 ("RUNNING", 0.0))
RESTART_LEN = sum(s for _, s in RESTART_STEPS)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def pct(values, p):
    """p-th percentile (0..100) by linear interpolation; None if empty."""
    v = sorted(values)
    if not v:
        return None
    if len(v) == 1:
        return v[0]
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def median(values):
    return pct(values, 50)


def fmt(x, nd=0, unit=""):
    if x is None:
        return "n/a"
    if isinstance(x, float) and nd == 0:
        x = round(x)
    if isinstance(x, int) or nd == 0:
        return f"{int(x):,}{unit}"
    return f"{x:,.{nd}f}{unit}"


def ms(seconds, nd=0):
    return "n/a" if seconds is None else fmt(seconds * 1000.0, nd, " ms")


def fmt_pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def proc_cpu(pid):
    """utime+stime of a process in seconds, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    try:
        return (int(rest[11]) + int(rest[12])) / CLK_TCK
    except (IndexError, ValueError):
        return None


def proc_status(pid, key):
    """A numeric field of /proc/PID/status (VmRSS in kB, Threads)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def sleep_until(t, stop=None):
    while True:
        d = t - time.time()
        if d <= 0:
            return
        if stop is not None and stop.is_set():
            return
        time.sleep(min(d, 0.1))


def http_get(port, path, headers=None, timeout=10.0):
    """(status, body) of one GET on a new connection to 127.0.0.1."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def run_cmd(cmd, timeout=30):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout)
        return (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"({e})"

