#!/usr/bin/env python3
"""make bench: mod_bbstatus against stock health checks, on loopback only.

Runs a real apache2 (tests/integration/httpd.py) in front of the simulated
Atlassian nodes of the test suite (tests/nodes/simnode.py) and writes the
figures to BENCHMARKS.md as tables, with the machine, the date and the exact
commands, plus a PNG timeline of the rolling restart (drawn by gnuplot with
bench/plot.gp).

Scenarios (``--scenario NAME``, repeatable; default: all):

  rolling    rolling graceful restart of three nodes under ~300 requests/s,
             Bitbucket and Jira flavors, every configuration
  backup     all nodes in MAINTENANCE, the backup client polls
             /mvc/maintenance through the proxy
  detection  time from a node's flip to STOPPING until the balancer stops
             choosing it, and from RUNNING until it is chosen again
  overhead   wrk through the proxy: module loaded + BBSTATUS checks against
             module not loaded + stock GET checks, alternating runs
  scale      1,000 members at hcinterval=1: achieved interval, checking CPU
  memory     resident size of the checking child before/after 100,000 checks

Configurations compared (all at the same hcinterval/hcpasses/hcfails):

  bbstatus        hcmethod=BBSTATUS (module defaults: standby, re-probe)
  bbstatus-plain  hcmethod=BBSTATUS, BBStatusStandby none,
                  BBStatusReprobeInterval 0
  get-status      stock hcmethod=GET hcuri=/status
  get-expr        stock GET /status + ProxyHCExpr on hc('body')
  get-projects    stock hcmethod=GET hcuri=/projects (the backup-client KB)
  tcp             stock hcmethod=TCP

The paced load generator (class PacedLoad) is part of this file: plain wrk
cannot hold a fixed request rate nor say which node answered each request.
wrk is used for the throughput scenario only.

Usage:
  /usr/bin/python3 bench/run.py --out BENCHMARKS.md       (what make bench runs)
  /usr/bin/python3 bench/run.py --quick --out /tmp/B.md   (a few minutes)
  /usr/bin/python3 bench/run.py --scenario rolling --configs bbstatus,tcp

Python 3 standard library only.  Every process started here is stopped in a
finally block; network traffic goes to 127.0.0.1 only.
"""

import argparse
import asyncio
import bisect
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [os.path.join(REPO, "tests", "integration"),
                os.path.join(REPO, "tests", "nodes")]

from httpd import Httpd  # noqa: E402
from simnode import SimNodes  # noqa: E402

# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------

HC_INTERVAL = 1          # seconds, every configuration
HC_PASSES = 2
HC_FAILS = 2
RATE = 300               # requests/s of the steady load
USER_PATH = "/rest/api/1.0/projects"   # what users ask for (not /status)
MAINT_PATH = "/mvc/maintenance"
SCENARIOS = ("rolling", "backup", "detection", "overhead", "scale", "memory")

CONFIG_ORDER = ("bbstatus", "bbstatus-plain", "get-status", "get-expr",
                "get-projects", "tcp")
STOCK = ("get-status", "get-expr", "get-projects", "tcp")

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
                 ("bbstatus", 5), ("bbstatus-plain", 5)),
    overhead_pairs=4, overhead_seconds=8, overhead_warmup=2,
    scale_members=1000, scale_procs=4, scale_balancers=10,
    scale_warmup=6.0, scale_window=30.0, scale_samples=15,
    idle_window=20.0, memory_checks=100_000,
)
QUICK = dict(
    rolling_nodes=("n2",), rolling_settle=3.5, warmup=2.0,
    backup_window=6.0, backup_rate=10,
    detect_flips=2,
    detect_runs=(("bbstatus", 1), ("bbstatus-plain", 1), ("bbstatus", 5)),
    overhead_pairs=2, overhead_seconds=3, overhead_warmup=1,
    scale_members=200, scale_procs=1, scale_balancers=2,
    scale_warmup=4.0, scale_window=10.0, scale_samples=5,
    idle_window=8.0, memory_checks=10_000,
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


# ---------------------------------------------------------------------------
# Paced load generator
# ---------------------------------------------------------------------------

class Rec:
    """One request: when it was due, sent and done, the answer, the node."""
    __slots__ = ("seq", "t_sched", "t_sent", "t_done", "status", "node",
                 "state", "err", "retried")

    def __init__(self, seq, t_sched):
        self.seq = seq
        self.t_sched = t_sched
        self.t_sent = self.t_done = None
        self.status = 0
        self.node = None
        self.state = None
        self.err = None
        self.retried = False

    @property
    def ok(self):
        return self.err is None and 200 <= self.status < 300

    def row(self):
        return [self.seq, round(self.t_sched, 6), round(self.t_sent, 6),
                round(self.t_done, 6), self.status, self.node, self.state,
                self.err, self.retried]


class _Incomplete(Exception):
    def __init__(self, got_bytes):
        super().__init__("connection closed before the answer was complete")
        self.got_bytes = got_bytes


STATE_RE = re.compile(rb"state=([A-Za-z_]+)")


class PacedLoad:
    """Open-loop HTTP/1.1 load at a fixed rate on keep-alive connections.

    Request i is due at t0 + i/rate; due requests go into a queue served by
    ``conns`` connection workers (asyncio, in a thread of its own).  Each
    request is recorded (Rec): due/sent/done times (time.time(), the clock
    simnode's events use), status, X-Node, the node's state from the body,
    and the error for connection failures.  A request that fails on a reused
    keep-alive connection before any byte of the answer arrived is sent once
    more on a new connection, as browsers and HTTP clients do (the server
    may close an idle connection just as the request goes out); it is
    marked ``retried``.  ``last_seen[node]`` is the send time of the latest
    request answered by that node, for live use.
    """

    def __init__(self, port, rate, path=USER_PATH, headers=None, conns=32,
                 timeout=10.0, max_seconds=900.0):
        self.port = port
        self.rate = float(rate)
        self.path = path
        self.headers = dict(headers or {})
        self.conns = conns
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.records = []
        self.last_seen = {}
        self.t0 = None
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = None
        self.error = None
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}",
                 "User-Agent: bbstatus-bench/1", "Accept: */*"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        self._req = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def start(self):
        self._thread = threading.Thread(target=self._run, name="load",
                                        daemon=True)
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 10)
        return self.records

    def _run(self):
        try:
            asyncio.run(self._main())
        except Exception as e:  # reported by the scenario
            self.error = repr(e)
            self._started.set()

    async def _main(self):
        queue = asyncio.Queue()
        workers = [asyncio.create_task(self._worker(queue))
                   for _ in range(self.conns)]
        self.t0 = t0 = time.time() + 0.05
        self._started.set()
        end = t0 + self.max_seconds
        i = 0
        while not self._stop.is_set():
            due = t0 + i / self.rate
            now = time.time()
            if now >= end:
                break
            if due > now:
                await asyncio.sleep(min(due - now, 0.05))
                continue
            queue.put_nowait(Rec(i, due))
            i += 1
        for _ in workers:
            queue.put_nowait(None)
        done, pending = await asyncio.wait(workers, timeout=self.timeout + 2)
        for t in pending:
            t.cancel()

    async def _worker(self, queue):
        conn = [None, None, 0]          # reader, writer, answers on it
        try:
            while True:
                rec = await queue.get()
                if rec is None:
                    return
                await self._one(conn, rec)
                self.records.append(rec)
        finally:
            self._close(conn)

    @staticmethod
    def _close(conn):
        if conn[1] is not None:
            try:
                conn[1].transport.abort()
            except Exception:
                pass
        conn[0] = conn[1] = None
        conn[2] = 0

    async def _one(self, conn, rec):
        rec.t_sent = time.time()
        for attempt in (0, 1):
            reused = conn[1] is not None and conn[2] > 0
            try:
                if conn[1] is None:
                    r, w = await asyncio.wait_for(asyncio.open_connection(
                        "127.0.0.1", self.port, limit=1 << 20), self.timeout)
                    sock = w.get_extra_info("socket")
                    if sock is not None:
                        sock.setsockopt(socket.IPPROTO_TCP,
                                        socket.TCP_NODELAY, 1)
                    conn[0], conn[1], conn[2] = r, w, 0
                conn[1].write(self._req)
                status, node, close, body = await asyncio.wait_for(
                    self._response(conn[0]), self.timeout)
            except _Incomplete as e:
                self._close(conn)
                if reused and attempt == 0 and not e.got_bytes:
                    rec.retried = True
                    continue
                rec.err = "closed"
            except (asyncio.TimeoutError, TimeoutError):
                self._close(conn)
                rec.err = "timeout"
            except ConnectionRefusedError:
                self._close(conn)
                rec.err = "refused"
            except (ConnectionError, OSError) as e:
                self._close(conn)
                if reused and attempt == 0:
                    rec.retried = True
                    continue
                rec.err = type(e).__name__
            else:
                conn[2] += 1
                if close:
                    self._close(conn)
                rec.status = status
                rec.node = node
                m = STATE_RE.search(body) if node else None
                rec.state = m.group(1).decode() if m else None
                if node:
                    self.last_seen[node] = rec.t_sent
            break
        rec.t_done = time.time()

    async def _response(self, reader):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as e:
            raise _Incomplete(bool(e.partial)) from None
        except asyncio.LimitOverrunError:
            raise _Incomplete(True) from None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise _Incomplete(True)
        status = int(parts[1])
        length = None
        chunked = close = False
        node = None
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if not sep:
                continue
            k = k.strip().lower()
            v = v.strip()
            if k == "content-length":
                length = int(v)
            elif k == "transfer-encoding":
                chunked = "chunked" in v.lower()
            elif k == "connection":
                close = "close" in v.lower()
            elif k == "x-node":
                node = v
        if parts[0] == "HTTP/1.0":
            close = True
        try:
            if chunked:
                body = b""
                for _ in range(100000):
                    size = int((await reader.readline()).split(b";")[0], 16)
                    if size == 0:
                        while (await reader.readline()).strip():
                            pass
                        break
                    body += await reader.readexactly(size + 2)
            elif length is not None:
                body = await reader.readexactly(length)
            else:
                body = await reader.read(1 << 20)
                close = True
        except (asyncio.IncompleteReadError, ValueError):
            raise _Incomplete(True) from None
        return status, node, close, body


# ---------------------------------------------------------------------------
# Timelines from the simulator's events
# ---------------------------------------------------------------------------

class StateTimeline:
    """Each node's state over time, from its initial state and simnode's
    /events (one entry per change, stamped with time.time())."""

    def __init__(self, initial, events, t_start):
        self.changes = {n: [(t_start, s)] for n, s in initial.items()}
        for ev in sorted(events, key=lambda e: e["t"]):
            if ev["node"] in self.changes:
                self.changes[ev["node"]].append((ev["t"], ev["state"]))

    def state(self, node, t):
        state = self.changes[node][0][1]
        for tc, s in self.changes[node]:
            if tc > t:
                break
            state = s
        return state

    def intervals(self, node, state, w0, w1):
        """[(a, b)] of the times within [w0, w1] the node was in state."""
        ch = self.changes[node]
        out = []
        for k, (t, s) in enumerate(ch):
            end = ch[k + 1][0] if k + 1 < len(ch) else w1
            a, b = max(t, w0), min(end, w1)
            if s == state and b > a:
                out.append((a, b))
        return out

    def flips(self, node, to_state):
        return [t for t, s in self.changes[node][1:] if s == to_state]


def out_of_rotation(recs, node, a, b, min_others):
    """Seconds within [a, b] in which ``node`` got no request although at
    least ``min_others`` requests in a row went to other nodes (the load
    kept flowing, the balancer did not choose the node)."""
    lost = 0.0
    prev = a
    others = 0
    for r in recs:
        if r.t_sent < a:
            continue
        if r.t_sent > b:
            break
        if r.node == node:
            if others >= min_others:
                lost += r.t_sent - prev
            prev = r.t_sent
            others = 0
        else:
            others += 1
    if others >= min_others:
        lost += b - prev
    return lost


# ---------------------------------------------------------------------------
# Processes: simulated nodes and httpd instances
# ---------------------------------------------------------------------------

class Bench:
    """Work directory, module snapshot, and every process started (stopped
    by close(), also on errors)."""

    def __init__(self, workdir, module_src, quick):
        self.workdir = os.path.abspath(workdir)
        self.quick = quick
        self.P = QUICK if quick else FULL
        self.procs = []
        self._n = 0
        for sub in ("httpd", "sim", "data"):
            path = os.path.join(self.workdir, sub)
            if sub == "httpd" and os.path.isdir(path):
                self._clear_httpd_roots(path)
            os.makedirs(path, exist_ok=True)
        # a snapshot of the module, so a rebuild during the run changes
        # nothing under our feet
        self.module = os.path.join(self.workdir, "mod_bbstatus.so")
        shutil.copy2(module_src, self.module)
        with open(self.module, "rb") as f:
            self.module_sha = hashlib.sha256(f.read()).hexdigest()[:16]
        self.simlog = open(os.path.join(self.workdir, "sim", "simnode.log"),
                           "a")

    @staticmethod
    def _clear_httpd_roots(path):
        for name in os.listdir(path):
            p = os.path.join(path, name)
            if os.path.islink(p):
                real = os.path.realpath(p)
                os.unlink(p)
                if real.startswith(os.path.join(os.sep, "tmp")):
                    shutil.rmtree(real, ignore_errors=True)
            else:
                shutil.rmtree(p, ignore_errors=True)

    def data_path(self, name):
        return os.path.join(self.workdir, "data", name)

    def nodes(self, specs=(), many=0, base_name="n"):
        sim = SimNodes.start(nodes=specs, many=many, base_name=base_name,
                             tmpdir=os.path.join(self.workdir, "sim"),
                             timeout=60.0, python=sys.executable,
                             stderr=self.simlog)
        self.procs.append(sim)
        return sim

    def httpd(self, name, module, loglevel="info", **kw):
        self._n += 1
        tmp = os.path.join(self.workdir, "httpd", f"{self._n:02d}-{name}")
        h = Httpd(tmp, name=name, module_path=self.module,
                  load_bbstatus=module, loglevel=loglevel, **kw)
        self.procs.append(h)
        return h

    def stop(self, proc):
        try:
            proc.stop()
        except Exception as e:
            log(f"stopping {proc!r}: {e!r}")
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self):
        for p in reversed(list(self.procs)):
            self.stop(p)
        self.simlog.close()


def log_problems(h):
    """Unexpected warn/error lines (crashes included) of an httpd run."""
    lines = h.unexpected_log_lines(allow=EXPECTED_LOG)
    return [ln[:300] for ln in lines[:20]], len(lines)


DIAG = """\
ProxyPass /balancer-manager !
<Location /balancer-manager>
    SetHandler balancer-manager
</Location>
"""
DIAG_MODULE = """\
ProxyPass /bbstatus !
<Location /bbstatus>
    SetHandler bbstatus
</Location>
"""


def balancer_conf(cfg, name, ports, interval=None, extra_proxy=""):
    c = CONFIGS[cfg]
    iv = HC_INTERVAL if interval is None else interval
    lines = [f"<Proxy balancer://{name}>"]
    for p in ports:
        lines.append(f"    BalancerMember http://127.0.0.1:{p} {c['method']} "
                     f"hcinterval={iv} hcpasses={HC_PASSES} "
                     f"hcfails={HC_FAILS}")
    for x in (c["extra"] + "\n" + extra_proxy).strip().splitlines():
        lines.append("    " + x.strip())
    lines.append("</Proxy>")
    return "\n".join(lines) + "\n"


def proxy_conf(cfg, ports, interval=None, extra_proxy="", server_extra=""):
    """The body of one configuration: one balancer balancer://bb of the
    given node ports behind ProxyPass /, plus diagnostics."""
    c = CONFIGS[cfg]
    body = (c["head"] + "\n" if c["head"] else "") + server_extra
    body += balancer_conf(cfg, "bb", ports, interval, extra_proxy)
    body += DIAG + (DIAG_MODULE if c["module"] else "")
    body += "ProxyPass / balancer://bb/\n"
    return body


def start_proxy(bench, cfg, ports, name, interval=None, extra_proxy="",
                server_extra="", loglevel="info", **kw):
    h = bench.httpd(name, CONFIGS[cfg]["module"], loglevel=loglevel, **kw)
    h.start(proxy_conf(cfg, ports, interval, extra_proxy, server_extra))
    return h


def wait_in_rotation(load, names, deadline=15.0, since=None):
    """Wait until every node in names answered a request sent after
    ``since`` (all members in rotation); False on timeout."""
    since = time.time() if since is None else since
    end = time.time() + deadline
    while time.time() < end:
        if all(load.last_seen.get(n, 0) > since for n in names):
            return True
        time.sleep(0.05)
    return False


def config_text_sample(cfg, interval=None, n=3):
    """The configuration as documented (ports as 7990, 7991, ...)."""
    ports = [7990 + i for i in range(n)]
    body = proxy_conf(cfg, ports, interval)
    return body.replace("127.0.0.1:799", "node:799")


# ---------------------------------------------------------------------------
# Scenario 1: rolling restart
# ---------------------------------------------------------------------------

def rolling_one(bench, cfg, flavor):
    P = bench.P
    names = ("n1", "n2", "n3")
    nodes = bench.nodes([(n, flavor, "RUNNING") for n in names])
    h = load = None
    try:
        h = start_proxy(bench, cfg, [nodes.port(n) for n in names],
                        f"rolling-{flavor}-{cfg}")
        load = PacedLoad(h.port, RATE).start()
        t_ready = time.time()
        in_rot = wait_in_rotation(load, names, deadline=6 * HC_INTERVAL + 5)
        # the window: warm-up with every node in rotation, then each
        # restart followed by the settle time
        w0 = time.time()
        first = w0 + P["warmup"]
        step = RESTART_LEN + P["rolling_settle"]
        for k, n in enumerate(P["rolling_nodes"]):
            sleep_until(first + k * step)
            nodes.script(n, [list(s) for s in RESTART_STEPS])
        w1 = first + len(P["rolling_nodes"]) * step
        sleep_until(w1)
        recs = load.stop()
        load = None
        events = nodes.events()
        problems, n_problems = log_problems(h)
    finally:
        if load is not None:
            load.stop()
        if h is not None:
            bench.stop(h)
        bench.stop(nodes)
    recs = sorted((r for r in recs if r.t_sent is not None),
                  key=lambda r: r.t_sent)
    tl = StateTimeline({n: "RUNNING" for n in names}, events, t_ready)
    res = analyse_rolling(cfg, flavor, recs, tl, names, w0, w1, in_rot,
                          problems, n_problems)
    res["first_restart"] = first - w0
    return res


def analyse_rolling(cfg, flavor, recs, tl, names, w0, w1, in_rot, problems,
                    n_problems):
    win = [r for r in recs if w0 <= r.t_sent < w1]
    phases = {}
    for r in win:
        ph = "all RUNNING"
        for n in names:
            s = tl.state(n, r.t_sent)
            if s != "RUNNING":
                ph = s
                break
        d = phases.setdefault(ph, {"sent": 0, "fail": 0})
        d["sent"] += 1
        if not r.ok:
            d["fail"] += 1
    fails = [r for r in win if not r.ok]
    kinds = {}
    for r in fails:
        if r.err:
            k = f"connection {r.err}"
        elif r.node:
            k = f"{r.status} from a node"
        else:
            k = f"{r.status} from the proxy"
        kinds[k] = kinds.get(k, 0) + 1
    not_running = [r for r in win if r.node and r.state
                   and r.state != "RUNNING"]
    lost = {}
    for n in names:
        lost[n] = sum(out_of_rotation(recs, n, a, b, min_others=12)
                      for a, b in tl.intervals(n, "RUNNING", w0, w1))
    lat = [r.t_done - r.t_sent for r in win if r.ok]
    # per-second timeline for the picture
    T = int(w1 - w0)
    bins = [{"t": i, **{n: 0 for n in names}, "fail": 0,
             "state": "RUNNING"} for i in range(T)]
    for r in win:
        i = int(r.t_sent - w0)
        if 0 <= i < T:
            if r.ok and r.node in names:
                bins[i][r.node] += 1
            elif not r.ok:
                bins[i]["fail"] += 1
    for b in bins:
        for n in names:
            s = tl.state(n, w0 + b["t"] + 0.5)
            if s != "RUNNING":
                b["state"] = s
    return {
        "config": cfg, "flavor": flavor, "window": [w0, w1],
        "in_rotation_at_start": in_rot,
        "sent": len(win), "achieved_rate": len(win) / max(w1 - w0, 1e-9),
        "failures": len(fails), "failure_kinds": kinds, "phases": phases,
        "served_not_running": len(not_running),
        "served_not_running_by_state": _count(r.state for r in not_running),
        "capacity_lost": sum(lost.values()), "capacity_lost_by_node": lost,
        "retried": sum(1 for r in win if r.retried),
        "latency_p50": pct(lat, 50), "latency_p99": pct(lat, 99),
        "timeline": bins, "log_problems": problems,
        "log_problem_count": n_problems,
    }


def _count(items):
    d = {}
    for x in items:
        d[x] = d.get(x, 0) + 1
    return d


def scenario_rolling(bench, configs):
    results = []
    for flavor in ("bitbucket", "jira"):
        for cfg in configs:
            log(f"rolling restart: {flavor}, {cfg}")
            res = rolling_one(bench, cfg, flavor)
            log(f"  failures {res['failures']}, served while not RUNNING "
                f"{res['served_not_running']}, capacity lost "
                f"{res['capacity_lost']:.1f} member-s, "
                f"{res['achieved_rate']:.0f} req/s")
            results.append(res)
    return {"runs": results, "nodes_restarted": list(bench.P["rolling_nodes"]),
            "settle": bench.P["rolling_settle"], "warmup": bench.P["warmup"]}


# ---------------------------------------------------------------------------
# Scenario 2: backup during maintenance
# ---------------------------------------------------------------------------

def backup_one(bench, cfg):
    P = bench.P
    names = ("n1", "n2", "n3")
    nodes = bench.nodes([(n, "bitbucket", "RUNNING") for n in names])
    h = load = poll = None
    try:
        h = start_proxy(bench, cfg, [nodes.port(n) for n in names],
                        f"backup-{cfg}")
        # some user traffic to see every member in rotation first
        load = PacedLoad(h.port, 50, conns=8).start()
        in_rot = wait_in_rotation(load, names, deadline=6 * HC_INTERVAL + 5)
        load.stop()
        load = None
        token = "bench-" + os.urandom(8).hex()
        poll = PacedLoad(h.port, P["backup_rate"], path=MAINT_PATH,
                         headers={"X-Atlassian-Maintenance-Token": token},
                         conns=4).start()
        t_flip = time.time()
        for n in names:
            nodes.set(n, state="MAINTENANCE")
        t_end = t_flip + P["backup_window"]
        sleep_until(t_end)
        recs = poll.stop()
        poll = None
        problems, n_problems = log_problems(h)
    finally:
        for lg in (load, poll):
            if lg is not None:
                lg.stop()
        if h is not None:
            bench.stop(h)
        bench.stop(nodes)
    recs = [r for r in recs if r.t_sent is not None and t_flip <= r.t_sent
            < t_end]
    settle = HC_FAILS * HC_INTERVAL + 1.5
    steady = [r for r in recs if r.t_sent >= t_flip + settle]
    return {
        "config": cfg, "in_rotation_at_start": in_rot,
        "sent": len(recs), "answered": sum(r.ok for r in recs),
        "steady_from": settle, "steady_sent": len(steady),
        "steady_answered": sum(r.ok for r in steady),
        "statuses": _count(r.err or (f"{r.status}" if r.node else
                                     f"{r.status} (proxy)") for r in recs),
        "log_problems": problems, "log_problem_count": n_problems,
    }


def scenario_backup(bench, configs):
    runs = []
    for cfg in configs:
        log(f"backup: {cfg}")
        res = backup_one(bench, cfg)
        log(f"  answered {res['answered']}/{res['sent']}, steady "
            f"{res['steady_answered']}/{res['steady_sent']}")
        runs.append(res)
    return {"runs": runs, "window": bench.P["backup_window"],
            "rate": bench.P["backup_rate"]}


# ---------------------------------------------------------------------------
# Scenario 3: detection time
# ---------------------------------------------------------------------------

def detection_one(bench, cfg, interval, flips_per_node, seed):
    """Four nodes; three of them flip RUNNING -> STOPPING -> RUNNING
    independently (random phases), the fourth stays RUNNING."""
    names = ("d1", "d2", "d3", "d4")
    flippers = names[:3]
    quiet = 0.5
    max_out = 2 * interval + 3.0
    max_back = (HC_PASSES + 1) * interval + 3.0
    nodes = bench.nodes([(n, "bitbucket", "RUNNING") for n in names])
    h = load = None
    stop = threading.Event()
    errors = []
    try:
        h = start_proxy(bench, cfg, [nodes.port(n) for n in names],
                        f"detect-{cfg}-{interval}s", interval=interval)
        load = PacedLoad(h.port, RATE).start()
        t_ready = time.time()
        in_rot = wait_in_rotation(load, names, deadline=6 * interval + 5)

        def flipper(node, rng):
            try:
                for _ in range(flips_per_node):
                    if stop.is_set():
                        return
                    time.sleep(rng.uniform(0.3, 0.3 + interval))
                    nodes.set(node, state="STOPPING")
                    t0 = time.time()
                    end = t0 + max_out
                    while time.time() < end and not stop.is_set():
                        last = max(load.last_seen.get(node, 0), t0)
                        if time.time() - last >= quiet:
                            break
                        time.sleep(0.02)
                    # a random hold, so the return is at a random phase
                    # of the check schedule too
                    time.sleep(rng.uniform(0, interval))
                    nodes.set(node, state="RUNNING")
                    t1 = time.time()
                    end = t1 + max_back
                    while time.time() < end and not stop.is_set():
                        if load.last_seen.get(node, 0) > t1:
                            break
                        time.sleep(0.02)
                    time.sleep(0.2)
            except Exception as e:
                errors.append(f"{node}: {e!r}")

        threads = [threading.Thread(target=flipper,
                                    args=(n, random.Random(seed + i)),
                                    daemon=True)
                   for i, n in enumerate(flippers)]
        for t in threads:
            t.start()
        bound = flips_per_node * (1.5 + 3 * interval + max_out + max_back)
        end = time.time() + bound + 10
        for t in threads:
            t.join(max(0.1, end - time.time()))
        stop.set()
        for t in threads:
            t.join(5)
        time.sleep(0.3)
        recs = load.stop()
        load = None
        events = nodes.events()
        problems, n_problems = log_problems(h)
    finally:
        stop.set()
        if load is not None:
            load.stop()
        if h is not None:
            bench.stop(h)
        bench.stop(nodes)
    recs = sorted((r for r in recs if r.t_sent is not None),
                  key=lambda r: r.t_sent)
    tl = StateTimeline({n: "RUNNING" for n in names}, events, t_ready)
    out_times, back_times, censored, per_flip_fail = [], [], 0, []
    sent_times = [r.t_sent for r in recs]
    for n in flippers:
        ch = tl.changes[n]
        for k in range(1, len(ch)):
            t, s = ch[k]
            if s != "STOPPING":
                continue
            t_back = ch[k + 1][0] if k + 1 < len(ch) else None
            if t_back is None:
                continue
            mine = [r for r in recs[bisect.bisect_left(sent_times, t):
                                    bisect.bisect_left(sent_times, t_back)]
                    if r.node == n]
            per_flip_fail.append(sum(1 for r in mine if not r.ok))
            if mine:
                last = mine[-1].t_sent
                j = bisect.bisect_right(sent_times, last)
                t_out = sent_times[j] if j < len(sent_times) else last
                if t_back - last < quiet * 0.9:
                    censored += 1       # still chosen when the hold ended
                    continue
            else:
                j = bisect.bisect_left(sent_times, t)
                t_out = sent_times[j] if j < len(sent_times) else t
            out_times.append(max(0.0, t_out - t))
            # back: first request it answers after its return
            j = bisect.bisect_left(sent_times, t_back)
            first = next((r.t_sent for r in recs[j:] if r.node == n), None)
            nxt = ch[k + 2][0] if k + 2 < len(ch) else None
            if first is not None and (nxt is None or first < nxt):
                back_times.append(first - t_back)
    rate = len(recs) / max(recs[-1].t_sent - recs[0].t_sent, 1e-9) \
        if len(recs) > 1 else 0
    return {
        "config": cfg, "interval": interval, "in_rotation_at_start": in_rot,
        "flips": len(out_times) + censored, "censored": censored,
        "out": out_times, "back": back_times,
        "out_median": median(out_times), "out_max": max(out_times or [0]),
        "back_median": median(back_times),
        "back_max": max(back_times) if back_times else None,
        "failures_per_flip": (statistics.mean(per_flip_fail)
                              if per_flip_fail else None),
        "resolution": len(names) / rate if rate else None,
        "rate": rate, "errors": errors, "log_problems": problems,
        "log_problem_count": n_problems,
    }


def scenario_detection(bench, configs):
    runs = []
    seed = 4242
    for cfg, interval in bench.P["detect_runs"]:
        if cfg not in configs:
            continue
        log(f"detection: {cfg} at hcinterval={interval}")
        res = detection_one(bench, cfg, interval, bench.P["detect_flips"],
                            seed)
        seed += 10
        log(f"  STOPPING->out median {ms(res['out_median'])} max "
            f"{ms(res['out_max'])}; RUNNING->in median "
            f"{ms(res['back_median'])} ({res['flips']} flips)")
        runs.append(res)
    return {"runs": runs}


# ---------------------------------------------------------------------------
# Scenario 4: request-path overhead (wrk)
# ---------------------------------------------------------------------------

WRK_RE = re.compile(r"Requests/sec:\s+([\d.]+)")


def wrk(port, seconds, path=USER_PATH):
    cmd = ["wrk", "-t2", "-c16", f"-d{seconds}s", "--latency",
           f"http://127.0.0.1:{port}{path}"]
    out = run_cmd(cmd, timeout=seconds + 30)
    m = WRK_RE.search(out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*", out)
    return (float(m.group(1)) if m else None,
            int(non2xx.group(1)) if non2xx else 0,
            errs.group(0) if errs else "", " ".join(cmd[:-1]))


def scenario_overhead(bench):
    P = bench.P
    names = ("o1", "o2", "o3")
    nodes = bench.nodes([(n, "bitbucket", "RUNNING") for n in names])
    ports = [nodes.port(n) for n in names]
    runs = []
    cmd = None
    a = b = None
    try:
        keep = "MaxKeepAliveRequests 0\n"
        a = start_proxy(bench, "bbstatus", ports, "overhead-bbstatus",
                        server_extra=keep)
        b = start_proxy(bench, "get-status", ports, "overhead-stock",
                        server_extra=keep)
        # every member checked and in rotation on both
        for h in (a, b):
            lg = PacedLoad(h.port, 50, conns=4).start()
            try:
                wait_in_rotation(lg, names, deadline=6 * HC_INTERVAL + 5)
            finally:
                lg.stop()
        for h in (a, b):
            wrk(h.port, P["overhead_warmup"])
        order = []
        for i in range(P["overhead_pairs"]):
            order += [("bbstatus", a), ("get-status", b)] if i % 2 == 0 \
                else [("get-status", b), ("bbstatus", a)]
        for k, (cfg, h) in enumerate(order):
            rps, non2xx, errs, cmd = wrk(h.port, P["overhead_seconds"])
            log(f"overhead run {k + 1}/{len(order)} {cfg}: {rps} req/s")
            runs.append({"config": cfg, "rps": rps, "non2xx": non2xx,
                         "errors": errs})
        problems = log_problems(a)[0] + log_problems(b)[0]
    finally:
        for h in (a, b):
            if h is not None:
                bench.stop(h)
        bench.stop(nodes)
    mod = [r["rps"] for r in runs if r["config"] == "bbstatus" and r["rps"]]
    stock = [r["rps"] for r in runs if r["config"] == "get-status"
             and r["rps"]]
    pair_ratios = []
    for i in range(0, len(runs) - 1, 2):
        x, y = runs[i], runs[i + 1]
        m = x if x["config"] == "bbstatus" else y
        s = y if m is x else x
        if m["rps"] and s["rps"]:
            pair_ratios.append(m["rps"] / s["rps"])
    return {
        "runs": runs, "seconds": P["overhead_seconds"],
        "median_module": median(mod), "median_stock": median(stock),
        "ratio": (median(mod) / median(stock)) if mod and stock else None,
        "pair_ratios": pair_ratios, "wrk": cmd, "log_problems": problems,
    }


# ---------------------------------------------------------------------------
# Scenarios 5 and 6: scale and memory
# ---------------------------------------------------------------------------

def scale_setup(bench, cfg, interval=None):
    P = bench.P
    total = P["scale_members"]
    procs = P["scale_procs"]
    per = total // procs
    sims = [bench.nodes(many=per, base_name=f"s{k}n") for k in range(procs)]
    ports = [p for s in sims for p in s._ports.values()]
    nb = P["scale_balancers"]
    size = len(ports) // nb
    c = CONFIGS[cfg]
    body = (c["head"] + "\n" if c["head"] else "")
    for i in range(nb):
        body += balancer_conf(cfg, f"b{i}", ports[i * size:(i + 1) * size],
                              interval)
    body += DIAG + (DIAG_MODULE if c["module"] else "")
    for i in range(nb):
        body += f"ProxyPass /b{i}/ balancer://b{i}/\n"
    h = bench.httpd(f"scale-{cfg}" + (f"-{interval}s" if interval else ""),
                    c["module"], loglevel="warn")
    h.start(body, deadline=60)
    return sims, h, nb * size


def status_counts(sims):
    total = 0
    times = {}
    for s in sims:
        for name, rec in s.nodes().items():
            total += rec["counts"]["status"]
            times[f"{s.control_port}/{name}"] = rec["status_times"]
    return total, times


def cpu_snapshot(h):
    pids = h.children()
    snap = {p: proc_cpu(p) for p in pids}
    snap[h.pid] = proc_cpu(h.pid)
    return {p: c for p, c in snap.items() if c is not None}


def scale_one(bench, cfg, memory):
    """Start 1,000 members (fewer with --quick), let the first round of
    checks pass, then measure CPU over a window in which nothing but the
    checks runs (no request is sent to httpd); with ``memory``, keep going
    until memory_checks more checks were made and read the checking
    child's RSS along the way.  Afterwards (BBSTATUS) sample the JSON
    diagnostics for the module's own achieved intervals."""
    P = bench.P
    sims, h, members = scale_setup(bench, cfg)
    res = {"config": cfg, "members": members, "balancers":
           P["scale_balancers"], "sim_processes": len(sims)}
    try:
        t_start = time.time()
        # first round: every node saw a check
        end = time.time() + 3 * HC_INTERVAL + 30
        while time.time() < end:
            n, times = status_counts(sims)
            if sum(1 for v in times.values() if v) >= members:
                break
            time.sleep(0.5)
        res["first_round_s"] = time.time() - t_start
        sleep_until(time.time() + P["scale_warmup"])
        c0 = cpu_snapshot(h)
        checks0, _ = status_counts(sims)
        w0 = time.time()
        rss = []
        checker = None
        win_end = w0 + P["scale_window"]
        limit = w0 + max(P["scale_window"],
                         (P["memory_checks"] / members * HC_INTERVAL * 1.6
                          if memory else 0)) + 30
        c1 = None
        while time.time() < limit:
            time.sleep(1.0 if checker is None else 5.0)
            now = time.time()
            if checker is None and now - w0 >= 3.0:
                snap = cpu_snapshot(h)
                deltas = {p: snap.get(p, 0) - c0.get(p, 0) for p in snap
                          if p != h.pid}
                checker = max(deltas, key=deltas.get) if deltas else None
                if checker is not None:
                    res["checker_threads"] = proc_status(checker, "Threads")
            if memory and checker is not None:
                n, _ = status_counts(sims)
                rss.append((now, n - checks0,
                            proc_status(checker, "VmRSS")))
            if c1 is None and now >= win_end:
                c1 = cpu_snapshot(h)
                w1 = now
                checks1, _ = status_counts(sims)
            if c1 is not None and (not memory or (
                    len(rss) > 1 and rss[-1][1] - rss[0][1]
                    >= P["memory_checks"])):
                break
        if c1 is None:
            c1 = cpu_snapshot(h)
            w1 = time.time()
            checks1, _ = status_counts(sims)
        wall = w1 - w0
        per_pid = {p: c1[p] - c0.get(p, 0) for p in c1}
        res["window_s"] = wall
        res["checks_in_window"] = checks1 - checks0
        res["checker_pid"] = checker
        res["checker_cpu"] = per_pid.get(checker, 0) / wall if checker else None
        res["children_cpu"] = sum(v for p, v in per_pid.items()) / wall
        res["cpu_by_pid"] = {str(p): v / wall for p, v in per_pid.items()}
        if memory:
            res["rss"] = rss
        # node-side intervals (simnode records each /status arrival)
        _, times = status_counts(sims)
        iv = []
        for ts in times.values():
            ts = [t for t in ts if w0 <= t <= w1]
            iv += [b - a for a, b in zip(ts, ts[1:])]
        res["node_interval_median"] = median(iv)
        res["node_interval_p99"] = pct(iv, 99)
        res["node_interval_n"] = len(iv)
        # the module's own records: interval_ms of every member, sampled
        if CONFIGS[cfg]["module"]:
            seen = set()
            mod_iv = []
            fails = 0
            for _ in range(P["scale_samples"]):
                try:
                    st, body = http_get(h.port, "/bbstatus?format=json",
                                        timeout=20)
                    doc = json.loads(body)
                except (OSError, ValueError):
                    fails += 1
                    time.sleep(1.0)
                    continue
                for b in doc.get("balancers", []):
                    for m in b.get("members", []):
                        key = (m["name"], m.get("checked_at"))
                        if m.get("interval_ms") and key not in seen:
                            seen.add(key)
                            mod_iv.append(m["interval_ms"] / 1000.0)
                time.sleep(1.05 * HC_INTERVAL)
            res["module_interval_median"] = median(mod_iv)
            res["module_interval_p99"] = pct(mod_iv, 99)
            res["module_interval_n"] = len(mod_iv)
            res["json_failures"] = fails
        res["log_problems"], res["log_problem_count"] = log_problems(h)
    finally:
        bench.stop(h)
        for s in sims:
            bench.stop(s)
    return res


def scale_idle(bench, cfg):
    """The same members at hcinterval=60 s, measured a few seconds after
    the start: next to no checks are due (BBSTATUS spreads the first ones
    over the interval, stock GET did them all at the start), so the CPU is
    what walking the members every watchdog tick costs."""
    P = bench.P
    sims, h, members = scale_setup(bench, cfg, interval=60)
    try:
        time.sleep(4.0)
        c0 = cpu_snapshot(h)
        n0, _ = status_counts(sims)
        w0 = time.time()
        time.sleep(P["idle_window"])
        c1 = cpu_snapshot(h)
        n1, _ = status_counts(sims)
        wall = time.time() - w0
        per = {p: c1[p] - c0.get(p, 0) for p in c1 if p != h.pid}
        checker = max(per, key=per.get) if per else None
        return {"members": members, "window_s": wall,
                "checks_per_s": (n1 - n0) / wall,
                "checker_cpu": per.get(checker, 0) / wall if checker
                else None,
                "children_cpu": sum(per.values()) / wall}
    finally:
        bench.stop(h)
        for sm in sims:
            bench.stop(sm)


def scenario_scale(bench, want_scale, want_memory):
    out = {}
    log(f"scale: bbstatus ({bench.P['scale_members']} members"
        + (", memory" if want_memory else "") + ")")
    r = scale_one(bench, "bbstatus", memory=want_memory)
    log(f"  checker CPU {fmt_pct(r['checker_cpu'])}, interval p99 "
        f"{ms(r.get('module_interval_p99'))} (module) "
        f"{ms(r['node_interval_p99'])} (nodes)")
    out["bbstatus"] = r
    if want_scale:
        log("scale: get-status")
        r = scale_one(bench, "get-status", memory=False)
        log(f"  checker CPU {fmt_pct(r['checker_cpu'])}, interval p99 "
            f"{ms(r['node_interval_p99'])} (nodes)")
        out["get-status"] = r
        for cfg in ("bbstatus", "get-status"):
            log(f"scale: {cfg} at hcinterval=60 (cost of the tick)")
            r = scale_idle(bench, cfg)
            log(f"  checker CPU {fmt_pct(r['checker_cpu'])} at "
                f"{r['checks_per_s']:.0f} checks/s")
            out[cfg]["idle"] = r
    return out


def fmt_pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

MARK = "<!-- make bench: {} {} -->"
SECTION_ORDER = ("header",) + SCENARIOS + ("targets",)


def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = proc_meminfo()
    deb = ""
    try:
        with open("/etc/debian_version") as f:
            deb = "Debian " + f.read().strip()
    except OSError:
        pass
    apache = run_cmd(["apache2", "-v"]).splitlines()[0:1]
    wrkv = run_cmd(["wrk", "-v"]).splitlines()[0:1]
    commit = run_cmd(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = run_cmd(["git", "-C", REPO, "status", "--porcelain",
                     "--untracked-files=no"])
    return {
        "cpu": cpu, "cores": os.cpu_count(), "mem_gib": mem,
        "os": f"{deb}, Linux {platform.release()}".strip(", "),
        "apache": apache[0] if apache else "?",
        "wrk": wrkv[0].split(" Copyright")[0] if wrkv else "?",
        "python": platform.python_version(),
        "commit": commit + (" (with uncommitted changes)" if dirty else ""),
        "load": os.getloadavg(),
    }


def proc_meminfo():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1048576)
    except OSError:
        pass
    return None


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def quick_note(meta):
    return ("\n> **Quick run** (`--quick`): smaller counts, not the "
            "reference figures.\n" if meta["quick"] else "")


def render_header(meta):
    m = meta["machine"]
    load0 = ", ".join(f"{x:.2f}" for x in meta["load_before"])
    load1 = ", ".join(f"{x:.2f}" for x in meta["load_after"])
    return f"""## Proxy-level benchmarks (`make bench`)

Real apache2 with the module (or without it, for the stock
configurations) in front of the simulated Atlassian nodes of the test suite
(`tests/nodes/simnode.py`), all on 127.0.0.1. Written by `bench/run.py`;
how it measures: [bench/README.md](bench/README.md). Each scenario below
names its own date; this header is from the latest run.

- Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB;
  {m['os']}; {m['apache']}; {m['wrk']}; Python {m['python']}.
- Module: commit {m['commit']}, `mod_bbstatus.so` sha256 {meta['module_sha']}…
- Load average before / after: {load0} / {load1}.
- Command: `{meta['command']}` ({meta['started']} to {meta['finished']}).
- Health-check settings of every configuration: `hcinterval={HC_INTERVAL}
  hcpasses={HC_PASSES} hcfails={HC_FAILS}`, member `retry` left at its
  default (60 s); apache2 event MPM, 2 children x 25 threads.

Configurations (body of the httpd configuration; `node:7990` stands for a
simulated node's loopback port):

{config_list()}

<details><summary>the configuration text of each</summary>

{config_blocks()}
</details>
{quick_note(meta)}"""


def config_list():
    return "\n".join(f"- *{CONFIGS[c]['label']}*: {CONFIGS[c]['text']}"
                     for c in CONFIG_ORDER)


def config_blocks():
    out = []
    for c in CONFIG_ORDER:
        out.append(f"{CONFIGS[c]['label']}"
                   + (" (module loaded)" if CONFIGS[c]["module"]
                      else " (module not loaded)")
                   + ":\n\n```apache\n" + config_text_sample(c).strip()
                   + "\n```\n")
    return "\n".join(out)


def log_notes(runs):
    """Lines about unexpected error_log lines (crashes included) and
    runs whose members were not all in rotation before the measurement."""
    out = []
    for r in runs:
        what = CONFIGS[r["config"]]["label"] + (
            f", {r['flavor']}" if "flavor" in r else "") + (
            f", hcinterval={r['interval']} s" if "interval" in r else "")
        if r.get("log_problem_count"):
            first = r["log_problems"][0].replace("`", "'")
            out.append(f"- {what}: {r['log_problem_count']} unexpected "
                       f"error_log line(s), first: `{first}`")
        if r.get("in_rotation_at_start") is False:
            out.append(f"- {what}: not every node was in rotation when the "
                       f"measurement began")
        if r.get("errors"):
            out.append(f"- {what}: {'; '.join(r['errors'])}")
    return ("\nNotes:\n\n" + "\n".join(out) + "\n") if out else ""


def section_head(title, meta):
    return (f"### {title}\n\n*Run {meta['started']}, `{meta['command']}`.*"
            "\n" + quick_note(meta) + "\n")


def best_stock(runs, flavor):
    cands = [r for r in runs if r["flavor"] == flavor and r["config"]
             in STOCK]
    if not cands:
        return None
    return min(cands, key=lambda r: (r["failures"], r["capacity_lost"]))


def render_rolling(res, meta, png_rel):
    out = [section_head("1. Rolling graceful restart", meta)]
    nodes = res["nodes_restarted"]
    out.append(
        f"Three nodes behind one balancer, a steady {RATE} requests/s "
        f"(`GET {USER_PATH}`, 32 keep-alive connections, paced). "
        f"{'Each node in turn' if len(nodes) > 1 else 'Node ' + nodes[0]} "
        f"goes RUNNING → STOPPING (3 s, the node answers 503) → connection "
        f"refused (3 s) → STARTING (4 s, 503) → RUNNING, then "
        f"{res['settle']:g} s before the next one. Counted from "
        f"{res['warmup']:g} s before the first restart to the end.\n\n"
        "- *failures*: answers other than 2xx plus connection errors, as "
        "the client saw them (by the phase of the restarting node).\n"
        "- *served while not RUNNING*: answers that came from a node in "
        "another state (its own 503 page, mostly).\n"
        "- *capacity lost*: member-seconds in which a RUNNING node got no "
        "request although the load went on to the others (12 or more "
        "requests in a row elsewhere).\n")
    for flavor in ("bitbucket", "jira"):
        rows = []
        for r in res["runs"]:
            if r["flavor"] != flavor:
                continue
            ph = r["phases"]
            rows.append([
                CONFIGS[r["config"]]["label"], fmt(r["sent"]),
                f"**{fmt(r['failures'])}**",
                " / ".join(fmt(ph.get(p, {}).get("fail", 0)) for p in
                           ("STOPPING", "STOPPED", "STARTING",
                            "all RUNNING")),
                fmt(r["served_not_running"]),
                fmt(r["capacity_lost"], 1),
                ms(r["latency_p99"], 1),
                ", ".join(f"{k}: {v}" for k, v in
                          sorted(r["failure_kinds"].items())) or "-"])
        if not rows:
            continue
        out.append(f"\n**{flavor.capitalize()} flavor**\n\n")
        out.append(md_table(
            ["configuration", "requests", "failures",
             "in STOPPING / refused / STARTING / all RUNNING",
             "served while not RUNNING", "capacity lost (member-s)",
             "p99 latency (2xx)", "failure kinds"], rows))
        b = best_stock(res["runs"], flavor)
        if b:
            out.append(f"\nBest stock configuration: "
                       f"{CONFIGS[b['config']]['label']} "
                       f"({b['failures']} failures).\n")
    if png_rel:
        out.append(f"\n![rolling restart timeline]({png_rel})\n\n"
                   "Requests per second answered (2xx) by each node and "
                   "failures per second; shaded: the restarting node is "
                   "STOPPING (orange), refusing connections (grey), "
                   "STARTING (yellow). 0 s: the first restart.\n")
    out.append(log_notes(res["runs"]))
    return "".join(out)


def render_backup(res, meta):
    out = [section_head("2. Backup during maintenance", meta)]
    out.append(
        f"Three Bitbucket nodes in rotation go to MAINTENANCE at once; the "
        f"backup client polls `GET {MAINT_PATH}` (with an "
        f"`X-Atlassian-Maintenance-Token` header) through the proxy, "
        f"{res['rate']} polls/s for {res['window']:g} s. *Steady state*: "
        f"from {HC_FAILS * HC_INTERVAL + 1.5:g} s after the switch "
        f"(hcfails x hcinterval + 1.5 s), when every check has had its say."
        "\n\n")
    rows = []
    for r in res["runs"]:
        whole = r["answered"] / r["sent"] if r["sent"] else None
        st = (r["steady_answered"] / r["steady_sent"]
              if r["steady_sent"] else None)
        rows.append([CONFIGS[r["config"]]["label"],
                     f"{r['answered']}/{r['sent']}", fmt_pct(whole),
                     f"**{fmt_pct(st)}**",
                     ", ".join(f"{k}: {v}" for k, v in
                               sorted(r["statuses"].items(), key=str))])
    out.append(md_table(["configuration", "answered/sent", "whole window",
                         "steady state", "answers"], rows))
    out.append(log_notes(res["runs"]))
    return "".join(out)


def render_detection(res, meta):
    out = [section_head("3. Detection time", meta)]
    out.append(
        f"Four Bitbucket nodes under {RATE} requests/s; three of them flip "
        "RUNNING → STOPPING → RUNNING independently, each flip at a random "
        "moment (uniform over one hcinterval), the fourth stays RUNNING. "
        "*Out*: from the flip to STOPPING (simnode's event time) to the "
        "first request after the last one the node answered. *Back*: from "
        "the flip to RUNNING to the first request it answers. Resolution: "
        "the time between two requests to one node (4 / request rate). "
        "Target for *out* with BBSTATUS: median ≤ hcinterval/2 + 100 ms, "
        "max ≤ hcinterval + 200 ms.\n\n")
    rows = []
    for r in res["runs"]:
        iv = r["interval"]
        tgt = ""
        if CONFIGS[r["config"]]["module"]:
            ok = (r["out_median"] is not None
                  and r["out_median"] <= iv / 2 + 0.1
                  and r["out_max"] <= iv + 0.2)
            tgt = "met" if ok else "**missed**"
        rows.append([CONFIGS[r["config"]]["label"], f"{iv} s",
                     f"{r['flips']}" + (f" ({r['censored']} not out)"
                                        if r["censored"] else ""),
                     ms(r["out_median"]), ms(r["out_max"]),
                     ms(r["back_median"]), ms(r["back_max"]),
                     fmt(r["failures_per_flip"], 1),
                     ms(r["resolution"], 1), tgt or "-"])
    out.append(md_table(["configuration", "hcinterval", "flips",
                         "out: median", "out: max", "back: median",
                         "back: max", "503s per flip", "resolution",
                         "target (out)"], rows))
    out.append(log_notes(res["runs"]))
    return "".join(out)


def render_overhead(res, meta):
    out = [section_head("4. Request-path overhead", meta)]
    out.append(
        "Two proxies side by side, each with the same three RUNNING "
        "simulated nodes: one with the module loaded and BBSTATUS checks, "
        "one without the module and stock `GET /status` checks (both "
        "`MaxKeepAliveRequests 0`). wrk runs alternate between them "
        f"(ABBA order), {res['seconds']} s each: `{res['wrk']} "
        f"http://127.0.0.1:PORT{USER_PATH}`.\n\n")
    rows = [[i + 1, CONFIGS[r["config"]]["label"], fmt(r["rps"]),
             r["non2xx"], r["errors"] or "-"]
            for i, r in enumerate(res["runs"])]
    out.append(md_table(["run", "configuration", "requests/s", "non-2xx",
                         "socket errors"], rows))
    pr = ", ".join(f"{x:.3f}" for x in res["pair_ratios"])
    out.append(
        f"\nMedian: {fmt(res['median_module'])} requests/s with the module, "
        f"{fmt(res['median_stock'])} without. **Ratio "
        f"{res['ratio']:.4f}** (per pair: {pr}).\n" if res["ratio"] else
        "\nNo ratio: a wrk run failed.\n")
    if res.get("log_problems"):
        out.append("\nUnexpected error_log lines: `"
                   + res["log_problems"][0].replace("`", "'") + "`\n")
    return "".join(out)


def render_scale(res, meta):
    out = [section_head("5. Scale", meta)]
    b = res.get("bbstatus")
    if not b:
        return ""
    out.append(
        f"{b['members']:,} members in {b['balancers']} balancers at "
        f"hcinterval={HC_INTERVAL} s, served by {b['sim_processes']} "
        "simulated node process" + ("es" if b["sim_processes"] != 1 else "")
        + " (one port per member). CPU: utime+stime "
        "over a window in which httpd gets no request at all, as a share of "
        "one core; the *checking child* is the child with the most CPU in "
        "the window (the one running the watchdog). Achieved interval: "
        "from the module's records (`interval_ms` of every member in the "
        "JSON diagnostics, sampled after the CPU window) and, for both, "
        "from the nodes (time between two /status requests to one node, "
        "during the window).\n\n")
    rows = []
    for cfg in ("bbstatus", "get-status"):
        r = res.get(cfg)
        if not r:
            continue
        rows.append([
            CONFIGS[cfg]["label"], fmt(r["members"]),
            (f"{ms(r.get('module_interval_median'), 1)} / "
             f"{ms(r.get('module_interval_p99'), 1)}"
             if r.get("module_interval_n") else "-"),
            f"{ms(r['node_interval_median'], 1)} / "
            f"{ms(r['node_interval_p99'], 1)}",
            fmt(r["checks_in_window"] / r["window_s"]),
            fmt_pct(r["checker_cpu"]), fmt_pct(r["children_cpu"]),
            fmt(cpu_per_check(r), 1, " µs"),
            f"{r['window_s']:.0f} s"])
    out.append(md_table(["configuration", "members",
                         "interval median / p99 (module records)",
                         "interval median / p99 (nodes)", "checks/s",
                         "checking child CPU", "all httpd CPU",
                         "checking CPU per check", "window"], rows))
    idle = [(cfg, res[cfg]["idle"]) for cfg in ("bbstatus", "get-status")
            if res.get(cfg, {}).get("idle")]
    if idle:
        out.append(
            "\nThe cost of the watchdog tick alone: the same members at "
            "hcinterval=60 s, CPU over "
            f"{idle[0][1]['window_s']:.0f} s starting 4 s after the start, "
            "when next to no check is due (BBSTATUS spreads its first checks "
            "over the interval, stock GET made them all at the start).\n\n")
        out.append(md_table(
            ["configuration", "checks/s", "checking child CPU",
             "all httpd CPU"],
            [[CONFIGS[c]["label"], fmt(r["checks_per_s"], 1),
              fmt_pct(r["checker_cpu"]), fmt_pct(r["children_cpu"])]
             for c, r in idle]))
    out.append(log_notes([r for r in res.values() if isinstance(r, dict)]))
    return "".join(out)


def cpu_per_check(r):
    if not r.get("checker_cpu") or not r.get("checks_in_window"):
        return None
    return r["checker_cpu"] * r["window_s"] / r["checks_in_window"] * 1e6


def memory_summary(r):
    rss = [x for x in r.get("rss", []) if x[2] is not None]
    if len(rss) < 2:
        return None
    first, last = rss[0], rss[-1]
    checks = last[1] - first[1]
    growth = last[2] - first[2]
    # least-squares slope of RSS over checks
    xs = [x[1] for x in rss]
    ys = [x[2] for x in rss]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den \
        if den else 0.0
    return {"rss_before": first[2], "rss_after": last[2], "checks": checks,
            "growth_kib": growth, "slope_kib_per_100k": slope * 100_000,
            "growth_per_100k": growth * 100_000 / checks if checks else None}


def render_memory(res, meta):
    r = res.get("bbstatus")
    if not r or not r.get("rss"):
        return ""
    s = memory_summary(r)
    out = [section_head("6. Memory", meta)]
    out.append(
        f"The BBSTATUS run of the scale scenario ({r['members']:,} members, "
        f"hcinterval={HC_INTERVAL} s) went on until the nodes had counted "
        f"{bench_P(meta)['memory_checks']:,} more checks. VmRSS of the "
        "checking child, read from /proc every 5 s; checks counted by the "
        "nodes (each check is one /status request). No request was sent "
        "to httpd meanwhile.\n\n")
    if not s:
        out.append("Not enough samples.\n")
        return "".join(out)
    out.append(md_table(
        ["RSS before", "RSS after", "checks between", "growth",
         "growth per 100,000 checks (end points)",
         "slope per 100,000 checks (fit)"],
        [[f"{s['rss_before']:,} KiB", f"{s['rss_after']:,} KiB",
          f"{s['checks']:,}", f"{s['growth_kib']:,} KiB",
          f"**{fmt(s['growth_per_100k'], 0)} KiB**",
          f"{fmt(s['slope_kib_per_100k'], 0)} KiB"]]))
    return "".join(out)


def bench_P(meta):
    return QUICK if meta["quick"] else FULL


def targets(results, meta):
    """[(target, figure, verdict, why)] for the goals of the issue."""
    rows = []
    rol = results.get("rolling")
    if rol:
        for flavor in ("bitbucket", "jira"):
            bb = next((r for r in rol["runs"] if r["flavor"] == flavor
                       and r["config"] == "bbstatus"), None)
            best = best_stock(rol["runs"], flavor)
            if bb and best:
                ok = bb["failures"] <= best["failures"]
                rows.append((
                    f"rolling restart, {flavor}: failures ≤ best stock",
                    f"{bb['failures']} vs {best['failures']} "
                    f"({CONFIGS[best['config']]['label']})",
                    "met" if ok else "missed",
                    "" if ok else why_rolling(bb, best)))
        bbj = next((r for r in rol["runs"] if r["flavor"] == "jira"
                    and r["config"] == "bbstatus"), None)
        if bbj:
            n = bbj["phases"].get("STOPPING", {}).get("fail", 0)
            rows.append((
                "rolling restart, jira: no failure in STOPPING",
                f"{n}", "met" if n == 0 else "missed",
                "" if n == 0 else why_jira_stopping(bbj, results)))
    bk = results.get("backup")
    if bk:
        r = next((x for x in bk["runs"] if x["config"] == "bbstatus"), None)
        if r:
            ok = r["answered"] == r["sent"] and r["sent"] > 0
            rows.append(("backup: 100% answered with BBSTATUS",
                         f"{r['answered']}/{r['sent']}",
                         "met" if ok else "missed",
                         "" if ok else "see the answers column of "
                         "section 2"))
        r = next((x for x in bk["runs"] if x["config"] == "get-projects"),
                 None)
        if r:
            st = (r["steady_answered"] / r["steady_sent"]
                  if r["steady_sent"] else 0)
            rows.append(("backup: stock /projects answers 0% (expected)",
                         fmt_pct(st) + " (steady state)",
                         "as expected" if st == 0 else "not as expected",
                         ""))
    det = results.get("detection")
    if det:
        for r in det["runs"]:
            if not CONFIGS[r["config"]]["module"]:
                continue
            iv = r["interval"]
            okm = r["out_median"] is not None and \
                r["out_median"] <= iv / 2 + 0.1
            okx = r["out_max"] <= iv + 0.2 and not r["censored"]
            rows.append((
                f"detection, {CONFIGS[r['config']]['label']}, "
                f"hcinterval={iv} s: median ≤ {ms(iv / 2 + 0.1)}, "
                f"max ≤ {ms(iv + 0.2)}",
                f"{ms(r['out_median'])} / {ms(r['out_max'])}",
                "met" if okm and okx else "missed",
                "" if okm and okx else why_detection(r)))
    ov = results.get("overhead")
    if ov and ov.get("ratio"):
        ok = ov["ratio"] >= 0.98
        rows.append(("overhead ratio ≥ 0.98", f"{ov['ratio']:.4f}",
                     "met" if ok else "missed",
                     "" if ok else why_overhead(ov)))
    sc = results.get("scale")
    if sc and "get-status" in sc:
        b, s = sc["bbstatus"], sc["get-status"]
        p99 = b.get("module_interval_p99") or b["node_interval_p99"]
        ok = p99 is not None and p99 <= 1.1 * HC_INTERVAL
        rows.append(("scale: p99 achieved interval within 10% of "
                     "hcinterval", ms(p99, 1), "met" if ok else "missed",
                     "" if ok else why_scale_interval(b)))
        ok = (b["checker_cpu"] or 0) <= (s["checker_cpu"] or 0)
        rows.append(("scale: checking CPU ≤ stock GET's",
                     f"{fmt_pct(b['checker_cpu'])} vs "
                     f"{fmt_pct(s['checker_cpu'])} of a core "
                     f"({fmt(cpu_per_check(b), 1)} vs "
                     f"{fmt(cpu_per_check(s), 1)} µs per check)",
                     "met" if ok else "missed",
                     "" if ok else why_scale_cpu(b, s)))
    if sc and sc.get("bbstatus", {}).get("rss"):
        m = memory_summary(sc["bbstatus"])
        if m:
            g = m["growth_per_100k"]
            ok = g is not None and g < 1024
            rows.append(("memory: growth < 1 MiB per 100,000 checks",
                         f"{fmt(g)} KiB", "met" if ok else "missed",
                         "" if ok else "resident size still grows with the "
                         "number of checks: something allocated per check "
                         "is not given back (see bench/README.md for how "
                         "to look with valgrind's massif)"))
    return rows


def why_rolling(bb, best):
    parts = []
    ph = bb["phases"]
    for p in ("STOPPING", "STOPPED", "STARTING", "all RUNNING"):
        n = ph.get(p, {}).get("fail", 0)
        m = best["phases"].get(p, {}).get("fail", 0)
        if n > m:
            parts.append(f"{n - m} more in {p}")
    return ("BBSTATUS had " + ", ".join(parts) + " than "
            + CONFIGS[best["config"]]["label"] + "; failure kinds: "
            + ", ".join(f"{k} {v}" for k, v in bb["failure_kinds"].items()))


def why_jira_stopping(bbj, results):
    det = results.get("detection")
    txt = (f"the node answers 503 to users from the instant it says "
           f"STOPPING; requests the balancer sends it before the module's "
           f"next probe sees STOPPING fail ({bbj['phases']['STOPPING']['fail']}"
           f" here). A re-probe after the first failed request bounds this "
           f"to about one watchdog tick (100 ms) plus the probe; nothing "
           f"that only polls /status can see a flip before it happens")
    if det:
        r = next((x for x in det["runs"] if x["config"] == "bbstatus"
                  and x["interval"] == HC_INTERVAL), None)
        if r and r["failures_per_flip"] is not None:
            txt += (f" (section 3: {r['failures_per_flip']:.1f} failed "
                    f"requests per flip)")
    return txt


def why_detection(r):
    if r["censored"]:
        return (f"{r['censored']} flips were still being chosen when the "
                f"hold ended")
    return ("the first check after a flip comes up to one hcinterval later "
            "(uniform phase) plus the watchdog tick (100 ms) and the probe; "
            "see the distribution in the raw data")


def why_overhead(ov):
    mods = [r["rps"] for r in ov["runs"] if r["config"] == "bbstatus"]
    sts = [r["rps"] for r in ov["runs"] if r["config"] == "get-status"]
    if mods and sts and (max(sts) - min(sts)) / median(sts) > \
            1 - ov["ratio"]:
        return (f"the difference is within the run-to-run spread of the "
                f"stock runs ({min(sts):.0f}..{max(sts):.0f} req/s); on a "
                f"shared or busy machine rerun with more pairs")
    return ("the module's post_request hook runs on every proxied request; "
            "look at it with perf")


def why_scale_interval(b):
    return ("checks are started by a 100 ms watchdog tick and run in a pool "
            "of BBStatusThreads threads; at this scale some members wait for "
            "a free thread or the next tick")


def why_scale_cpu(b, s):
    rate_b = b["checks_in_window"] / b["window_s"]
    rate_s = s["checks_in_window"] / s["window_s"]
    txt = ("a BBSTATUS check also parses the JSON body, decides and writes "
           "the member's shared record")
    pb, ps = cpu_per_check(b), cpu_per_check(s)
    ib, is_ = b.get("idle"), s.get("idle")
    if ib and is_ and ib["checker_cpu"] is not None and pb:
        walk = ib["checker_cpu"] - ib["checks_per_s"] * pb / 1e6
        if walk > (is_["checker_cpu"] or 0):
            txt += (f"; the 100 ms watchdog tick that walks all "
                    f"{b['members']:,} members costs about "
                    f"{fmt_pct(walk)} of a core on its own (stock GET's "
                    f"{fmt_pct(is_['checker_cpu'])}), see the second table "
                    f"of section 5")
    if rate_b > rate_s * 1.02:
        txt += (f"; and it checks {rate_b / rate_s - 1:.0%} more often "
                f"({rate_b:.0f} vs {rate_s:.0f} checks/s: stock GET "
                f"drifts to hcinterval + up to one 100 ms tick)")
    if pb and ps and pb <= ps:
        txt += "; per check it costs no more than stock GET"
    return txt


TARGETS_RX = re.compile(r"<!-- targets: (\{.*?\}) -->", re.S)


def render_targets(results, meta, old_section=""):
    """The targets table: rows of the scenarios run now, and the rows an
    earlier run left for the others (kept as JSON in a comment)."""
    rows = {}
    m = TARGETS_RX.search(old_section or "")
    if m:
        try:
            rows = json.loads(m.group(1))
        except ValueError:
            rows = {}
    for sc in meta["scenarios"]:
        rows[sc] = []
    for r in targets(results, meta):
        sc = next(x for x in SCENARIOS if r[0].startswith(x))
        fig = r[1] + (" (quick run)" if meta["quick"] else "")
        rows.setdefault(sc, []).append([r[0], fig, r[2], r[3]])
    table = [r for sc in SCENARIOS for r in rows.get(sc, [])]
    if not table:
        return ""
    out = ["### Targets\n\nGoals from the issue, not assertions; "
           "*why* is filled in where one is missed. Each row comes from the "
           "latest run of its scenario (dates in the sections above).\n\n"]
    out.append(md_table(["target", "figure", "verdict", "why"], table))
    out.append("\n<!-- targets: " + json.dumps(rows, ensure_ascii=False)
               .replace("--", "\\u002d\\u002d") + " -->\n")
    return "".join(out)


def write_report(path, results, meta, png_rel):
    sections = {"header": render_header(meta)}
    if "rolling" in results:
        sections["rolling"] = render_rolling(results["rolling"], meta,
                                             png_rel)
    if "backup" in results:
        sections["backup"] = render_backup(results["backup"], meta)
    if "detection" in results:
        sections["detection"] = render_detection(results["detection"], meta)
    if "overhead" in results:
        sections["overhead"] = render_overhead(results["overhead"], meta)
    if "scale" in results:
        if meta["scale_run"]:
            sections["scale"] = render_scale(results["scale"], meta)
        if meta["memory_run"]:
            sections["memory"] = render_memory(results["scale"], meta)
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read()
    except FileNotFoundError:
        old = "# Benchmarks\n"
    prefix, kept = split_report(old)
    sections["targets"] = render_targets(results, meta,
                                         kept.get("targets", ""))
    merged = dict(kept)
    merged.update({k: v for k, v in sections.items() if v})
    body = prefix.rstrip("\n") + "\n\n"
    for name in SECTION_ORDER:
        if name in merged:
            body += (MARK.format(name, "begin") + "\n" + merged[name].strip()
                     + "\n" + MARK.format(name, "end") + "\n\n")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(body.rstrip("\n") + "\n")
    os.replace(tmp, path)


def split_report(text):
    """(text outside our markers, {section: content})."""
    kept = {}
    rx = re.compile(r"<!-- make bench: (\w+) begin -->\n(.*?)"
                    r"<!-- make bench: \1 end -->\n*", re.S)
    for m in rx.finditer(text):
        kept[m.group(1)] = m.group(2)
    prefix = rx.sub("", text)
    return prefix, kept


# ---------------------------------------------------------------------------
# Picture
# ---------------------------------------------------------------------------

STATE_CODE = {"STOPPING": 1, "STOPPED": 2, "STARTING": 3}


def write_timeline(path, run):
    first = run.get("first_restart", 0)
    with open(path, "w") as f:
        f.write("# t n1 n2 n3 failures stopping stopped starting\n")
        for b in run["timeline"]:
            s = b["state"]
            f.write(f"{b['t'] - first:g} {b['n1']} {b['n2']} {b['n3']} "
                    f"{b['fail']} {int(s == 'STOPPING')} "
                    f"{int(s == 'STOPPED')} {int(s == 'STARTING')}\n")
        if run["timeline"]:
            b = run["timeline"][-1]    # so that the last step is drawn
            f.write(f"{b['t'] + 1 - first:g} {b['n1']} {b['n2']} "
                    f"{b['n3']} {b['fail']} 0 0 0\n")


def draw_picture(bench, rolling, png_path):
    if not shutil.which("gnuplot"):
        log("gnuplot not found: no picture")
        return False
    args = []
    k = 0
    for flavor in ("bitbucket", "jira"):
        bb = next((r for r in rolling["runs"] if r["flavor"] == flavor
                   and r["config"] == "bbstatus"), None)
        best = best_stock(rolling["runs"], flavor)
        for run in (bb, best):
            k += 1
            if run is None:
                args.append(f"f{k}=''; t{k}=''")
                continue
            dat = bench.data_path(f"timeline-{flavor}-{run['config']}.dat")
            write_timeline(dat, run)
            title = (f"{flavor.capitalize()}: "
                     f"{CONFIGS[run['config']]['label']} "
                     f"({run['failures']} failures)")
            args.append(f"f{k}='{dat}'; t{k}='{title}'")
    os.makedirs(os.path.dirname(png_path) or ".", exist_ok=True)
    cmd = ["gnuplot", "-e", "; ".join(args) + f"; out='{png_path}'",
           os.path.join(HERE, "plot.gp")]
    out = run_cmd(cmd, timeout=60)
    if not os.path.exists(png_path):
        log(f"gnuplot did not draw {png_path}: {out}")
        return False
    return True


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="mod_bbstatus benchmarks (loopback only); writes "
                    "BENCHMARKS.md")
    p.add_argument("--out", default=os.path.join(REPO, "BENCHMARKS.md"),
                   help="the Markdown file to write (sections of other "
                        "scenarios and any text outside the bench markers "
                        "are kept)")
    p.add_argument("--png", default=None,
                   help="the timeline picture (default: "
                        "<dir of --out>/bench/rolling-restart.png)")
    p.add_argument("--quick", action="store_true",
                   help="smaller counts (a few minutes), for development")
    p.add_argument("--scenario", action="append", default=[],
                   help="run only these (repeatable or comma-separated): "
                        + ", ".join(SCENARIOS))
    p.add_argument("--configs", default=",".join(CONFIG_ORDER),
                   help="configurations for rolling, backup and "
                        "detection (comma-separated; default all: "
                        + ", ".join(CONFIG_ORDER) + ")")
    p.add_argument("--workdir", default=os.path.join(REPO, "build", "bench"),
                   help="httpd roots, simulator logs and raw data")
    p.add_argument("--from-json", metavar="RESULTS",
                   help="run nothing: write the report and picture again "
                        "from the raw results of an earlier run "
                        "(<workdir>/data/results.json)")
    p.add_argument("--module", default=os.environ.get("BBS_MODULE") or
                   os.path.join(REPO, ".libs", "mod_bbstatus.so"),
                   help="the module to test (copied into the work directory "
                        "first; default .libs/mod_bbstatus.so or $BBS_MODULE)")
    a = p.parse_args(argv)
    wanted = [s.strip() for x in a.scenario for s in x.split(",")
              if s.strip()] or list(SCENARIOS)
    for s in wanted:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}; one of {', '.join(SCENARIOS)}")
    a.scenarios = [s for s in SCENARIOS if s in wanted]
    a.config_list = [c.strip() for c in a.configs.split(",") if c.strip()]
    for c in a.config_list:
        if c not in CONFIGS:
            p.error(f"unknown configuration {c!r}; one of "
                    f"{', '.join(CONFIG_ORDER)}")
    if not shutil.which("wrk") and "overhead" in a.scenarios:
        p.error("wrk is not installed (Debian: apt-get install wrk)")
    if not os.path.isfile(a.module) and not a.from_json:
        p.error(f"{a.module} does not exist: build the module first (make)")
    return a


def main(argv=None):
    a = parse_args(argv)

    def on_term(signum, frame):
        raise SystemExit(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)

    out = os.path.abspath(a.out)
    png = os.path.abspath(a.png) if a.png else os.path.join(
        os.path.dirname(out), "bench", "rolling-restart.png")
    if a.from_json:
        return render_again(a.from_json, out, png, a.workdir)
    cmd = "/usr/bin/python3 bench/run.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    meta = {"quick": a.quick, "scenarios": a.scenarios,
            "command": cmd.strip(),
            "started": datetime.datetime.now().astimezone().strftime(
                "%Y-%m-%d %H:%M %Z"),
            "load_before": os.getloadavg(), "machine": machine_info(),
            "scale_run": "scale" in a.scenarios,
            "memory_run": "memory" in a.scenarios}
    bench = Bench(a.workdir, a.module, a.quick)
    meta["module_sha"] = bench.module_sha
    results = {}
    t_begin = time.time()
    log(f"scenarios: {', '.join(a.scenarios)}"
        + (" (quick)" if a.quick else "") + f"; work dir {bench.workdir}")
    try:
        if "rolling" in a.scenarios:
            results["rolling"] = scenario_rolling(bench, a.config_list)
        if "backup" in a.scenarios:
            results["backup"] = scenario_backup(bench, a.config_list)
        if "detection" in a.scenarios:
            results["detection"] = scenario_detection(bench, a.config_list)
        if "overhead" in a.scenarios:
            log("overhead: wrk, alternating")
            results["overhead"] = scenario_overhead(bench)
        if "scale" in a.scenarios or "memory" in a.scenarios:
            results["scale"] = scenario_scale(bench, "scale" in a.scenarios,
                                              "memory" in a.scenarios)
    finally:
        bench.close()
        meta["finished"] = datetime.datetime.now().astimezone().strftime(
            "%H:%M %Z")
        meta["load_after"] = os.getloadavg()
        raw = os.path.join(bench.workdir, "data", "results.json")
        with open(raw, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=1,
                      default=str)
        log(f"raw results: {raw}")
    png_rel = None
    if "rolling" in results and draw_picture(bench, results["rolling"], png):
        png_rel = os.path.relpath(png, os.path.dirname(out))
        log(f"picture: {png}")
    write_report(out, results, meta, png_rel)
    log(f"wrote {out} in {time.time() - t_begin:.0f} s")
    return 0


def render_again(path, out, png, workdir):
    with open(path) as f:
        doc = json.load(f)
    meta, results = doc["meta"], doc["results"]
    meta.setdefault("finished", "?")
    meta.setdefault("load_after", meta.get("load_before", (0, 0, 0)))

    class Paths:
        def data_path(self, name):
            d = os.path.join(os.path.abspath(workdir), "data")
            os.makedirs(d, exist_ok=True)
            return os.path.join(d, name)
    png_rel = None
    if "rolling" in results and draw_picture(Paths(), results["rolling"],
                                             png):
        png_rel = os.path.relpath(png, os.path.dirname(out))
    write_report(out, results, meta, png_rel)
    log(f"wrote {out} from {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
