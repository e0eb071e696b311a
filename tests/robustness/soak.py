#!/usr/bin/env python3
"""Soak: many BBSTATUS members checked every hcinterval for a long time
while their nodes flip states (and misbehave) at random.

What is watched:

  * the resident size (VmRSS) of the child that runs the checker (the pid
    named by ``BBS0041: checker started in process N``): after a warm-up
    it must not grow by more than 1 MiB;
  * the cadence of every member's checks, from the timestamps of the
    ``BBS0011: checked ...`` debug lines: no member may go unchecked for
    three intervals or more ("no check is skipped for more than two
    intervals"), counting the time from its last check to the end too;
  * the number of checks that ran (the full soak wants 100,000 or more).

Command line (``make soak``)::

    soak.py [--members 50] [--interval-ms 100] [--checks 100000]
            [--warmup 20] [--max-seconds 900] [--seed N]
            [--result build/soak-result.json] [--keep]

It starts the simulated nodes and an httpd of its own (event MPM, the
module at debug log level), runs until ``--checks`` checks have been
logged (or ``--max-seconds`` passed), stops everything, writes the result
as JSON to ``--result`` and prints a summary.  Exit status 0 when every
limit held, 1 when one did not, 2 when the run could not be set up.

The pieces (``CheckLog``, ``Soak``, ``soak_body``, ``rss_kb``, ...) are
also used by tests/integration/test_500_robustness.py for a short soak.
"""

import argparse
import collections
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
for _p in (os.path.join(TESTS, "integration"), os.path.join(TESTS, "nodes")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from httpd import Httpd, HttpdError, wait_until  # noqa: E402
from simclient import SimNodes  # noqa: E402

MiB = 1024 * 1024

# "[Wed Nov 25 14:00:59.129210 2026] [bbstatus:debug] [pid 9200:tid 9365]
#  src/...c(261): BBS0011: checked balancer://bb member http://...: route, .."
_STAMP = r"^\[\w{3} (\w{3}) +(\d+) (\d\d):(\d\d):(\d\d(?:\.\d+)?) (\d{4})\]"
CHECK_RE = re.compile(
    _STAMP + r" \[bbstatus:[\w]+\] \[pid (\d+)(?::tid \d+)?\] [^\n]*?"
    r"BBS0011: checked (\S+) member (\S+): (\w+),")
CHECKER_RE = re.compile(
    _STAMP + r" \[bbstatus:[\w]+\] \[pid (\d+)(?::tid \d+)?\] [^\n]*?"
    r"BBS0041: checker started in process (\d+)")
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
     "Nov", "Dec"), 1)}

# What the nodes are switched between: mostly states a real node reports,
# some answers that must fail fast (never a slow one: a probe that uses its
# whole time limit is not a skipped check).  Weighted towards RUNNING.
FLIPS = (
    [("state", "RUNNING")] * 8
    + [("state", s) for s in ("STARTING", "FIRST_RUN", "MAINTENANCE",
                              "STOPPING", "ERROR", "STOPPED")]
    + [("mode", m) for m in ("empty", "garbage", "html200", "redirect",
                             "reset", "invalid_utf8", "refuse")]
)


def log_time(m):
    """Epoch seconds of the timestamp groups of a CHECK_RE/CHECKER_RE match
    (the error log writes local time)."""
    mon, day, hh, mm, ss, year = (m.group(i) for i in range(1, 7))
    t = time.mktime((int(year), _MONTHS[mon], int(day), int(hh), int(mm), 0,
                     0, 0, -1))
    return t + float(ss)


def rss_kb(pid):
    """VmRSS of pid in kB, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class CheckLog:
    """Follows an httpd error log from a byte offset and keeps, per member,
    the number of BBS0011 checks, the time of the last one and the longest
    gap between two consecutive ones; also every BBS0041 checker start.
    Only whole lines are read; ``poll()`` reads what is new.  Checks
    logged by a pid in ``exclude`` count only in ``check_pids`` and
    ``pid_last``: a process that was killed may have logged its last
    check between the offset and the kill."""

    def __init__(self, path, offset=0, exclude=()):
        self.path = path
        self.offset = offset
        self.exclude = frozenset(exclude)
        self._rest = b""
        self.total = 0
        self.count = collections.Counter()       # member -> checks
        self.last = {}                           # member -> time
        self.first = {}                          # member -> time
        self.max_gap = {}                        # member -> (gap, at)
        self.verdicts = collections.Counter()
        self.check_pids = collections.Counter()  # pid -> checks logged
        self.pid_last = {}                       # pid -> time
        self.checkers = []                       # [(time, pid)]

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return 0
        self.offset += len(data)
        data = self._rest + data
        cut = data.rfind(b"\n") + 1
        self._rest = data[cut:]
        text = data[:cut].decode("utf-8", "replace")
        before = self.total
        for line in text.splitlines():
            if "BBS0011" in line:
                m = CHECK_RE.match(line)
                if m:
                    self._check(log_time(m), int(m.group(7)), m.group(9),
                                m.group(10))
            elif "BBS0041" in line:
                m = CHECKER_RE.match(line)
                if m:
                    self.checkers.append((log_time(m), int(m.group(8))))
        return self.total - before

    def _check(self, t, pid, member, verdict):
        self.check_pids[pid] += 1
        self.pid_last[pid] = t
        if pid in self.exclude:
            return
        self.total += 1
        self.count[member] += 1
        self.verdicts[verdict] += 1
        prev = self.last.get(member)
        if prev is None:
            self.first[member] = t
        else:
            gap = t - prev
            if gap > self.max_gap.get(member, (0.0, 0))[0]:
                self.max_gap[member] = (gap, t)
        self.last[member] = t

    def worst_gap(self, now=None, members=None):
        """(gap seconds, member, "between"|"tail") of the longest time a
        member went unchecked; with ``now``, the time since each member's
        last check counts too.  Members never checked give an infinite
        gap."""
        worst = (0.0, None, "between")
        for member in (members if members is not None else self.count):
            if member not in self.last:
                return (float("inf"), member, "never")
            gap = self.max_gap.get(member, (0.0, 0))[0]
            if gap > worst[0]:
                worst = (gap, member, "between")
            if now is not None and now - self.last[member] > worst[0]:
                worst = (now - self.last[member], member, "tail")
        return worst

    def gaps_over(self, limit):
        """{member: longest gap} of the members whose longest gap between
        two checks is limit or more."""
        return {m: round(g, 3) for m, (g, _) in self.max_gap.items()
                if g >= limit}

    def checker_pid(self):
        """Pid of the latest checker start seen, or None."""
        return self.checkers[-1][1] if self.checkers else None


def member_url(port):
    return f"http://127.0.0.1:{port}"


def soak_body(ports, interval_ms, extra=""):
    """httpd config body: one balancer ``balancer://soak`` with a BBSTATUS
    member per port, checked every interval_ms, plus the diagnostics."""
    members = "".join(
        f"    BalancerMember {member_url(p)} hcmethod=BBSTATUS "
        f"hcinterval={interval_ms}ms hcpasses=1 hcfails=1\n" for p in ports)
    return (
        "BBStatusTimeout 2\n"
        f"{extra}"
        "<Proxy balancer://soak>\n"
        f"{members}"
        "</Proxy>\n"
        "ProxyPass /bbstatus !\n"
        "ProxyPass /server-status !\n"
        "ProxyPass / balancer://soak/\n"
        "<Location /bbstatus>\n    SetHandler bbstatus\n</Location>\n"
        "<Location /server-status>\n    SetHandler server-status\n"
        "</Location>\n")


def soak_allow(ports):
    """error_log lines the flipping nodes cause: a node in STOPPED state or
    "refuse" mode makes mod_proxy's connect code log AH00957 (and AH00959
    when it puts the probe's worker into error state)."""
    alt = "|".join(str(p) for p in sorted(ports))
    return [
        rf"\[proxy:error\] .* AH00957: BBSTATUS: attempt to connect to "
        rf"127\.0\.0\.1:({alt}) \(127\.0\.0\.1:({alt})\) failed",
        rf"\[proxy:error\] .* AH00959: ap_proxy_connect_backend disabling "
        rf"worker for \(127\.0\.0\.1:({alt})\)",
    ]


def json_members(h, balancer="balancer://soak"):
    status, _, body = h.get("/bbstatus?format=json", timeout=10)
    if status != 200:
        raise AssertionError(f"/bbstatus answered {status}: {body[:200]!r}")
    data = json.loads(body)
    for b in data["balancers"]:
        if b["name"] == balancer:
            return {m["name"]: m for m in b["members"]}
    raise AssertionError(f"no {balancer} in /bbstatus")


class Soak:
    """One soak run against a started httpd ``h`` whose config is
    ``soak_body(...)`` for the nodes ``names`` of ``nodes``.

    ``run()`` flips a random node every ``flip_every`` seconds (a bounded
    loop: it ends at ``duration`` seconds, or once ``target_checks`` checks
    have been logged, and never later than ``max_seconds``), samples the
    checker's VmRSS every ``sample_every`` seconds and returns a result
    dict (see ``run``)."""

    def __init__(self, h, nodes, names, interval_ms, *, log_offset=0,
                 warmup=5.0, seed=None, flip_every=0.05, sample_every=0.5,
                 progress=None):
        self.h = h
        self.nodes = nodes
        self.names = list(names)
        self.interval = interval_ms / 1000.0
        self.members = [member_url(nodes.port(n)) for n in self.names]
        self.log = CheckLog(h.error_log_path, log_offset)
        self.warmup = warmup
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.flip_every = flip_every
        self.sample_every = sample_every
        self.progress = progress
        self.flips = 0

    def wait_first_checks(self, deadline):
        """Wait until every member has been checked twice and the checker
        is known; returns the checker's pid."""
        def ready():
            self.log.poll()
            return (self.log.checker_pid() is not None and all(
                self.log.count[m] >= 2 for m in self.members))
        wait_until(ready, deadline, interval=0.1,
                   what="two checks of every member and BBS0041")
        return self.log.checker_pid()

    def flip(self):
        name = self.rng.choice(self.names)
        kind, value = self.rng.choice(FLIPS)
        if kind == "state":
            self.nodes.set(name, state=value, mode="normal")
        else:
            self.nodes.set(name, state="RUNNING", mode=value)
        self.flips += 1

    def settle(self):
        """Every node back to RUNNING, normal answers."""
        for name in self.names:
            self.nodes.set(name, state="RUNNING", mode="normal")

    def run(self, duration=None, target_checks=None, max_seconds=600.0):
        """Returns a dict: seconds, checks (logged during the run), flips,
        checker pids, rss_kb samples [(s, kB)], rss_base_kb (at the end of
        the warm-up), rss_max_kb / rss_end_kb (after it), rss_growth_bytes
        (max after warm-up - base), worst_gap_s / worst_gap_member /
        worst_gap_kind, gaps_over_3_intervals, interval_s, seed."""
        if duration is None and target_checks is None:
            raise ValueError("give duration or target_checks")
        limit = min(duration if duration is not None else max_seconds,
                    max_seconds)
        self.log.poll()
        start_checks = self.log.total
        pid = self.log.checker_pid()
        if pid is None:
            raise AssertionError("no BBS0041 line: the checker's pid is "
                                 "unknown (is bbstatus at debug level?)")
        t0 = time.monotonic()
        samples = []
        base = None
        next_sample = next_flip = next_report = t0
        while True:
            now = time.monotonic()
            el = now - t0
            if el >= limit:
                break
            if target_checks is not None and \
                    self.log.total - start_checks >= target_checks and \
                    el >= self.warmup + 1:
                break
            if now >= next_flip:
                self.flip()
                next_flip = now + self.flip_every
            if now >= next_sample:
                self.log.poll()
                pid = self.log.checker_pid()
                kb = rss_kb(pid)
                samples.append((round(el, 2), kb, pid))
                if base is None and el >= self.warmup and kb is not None:
                    base = (kb, pid)
                next_sample = now + self.sample_every
            if self.progress and now >= next_report:
                self.progress(el, self.log.total - start_checks, samples)
                next_report = now + 10
            time.sleep(min(self.flip_every, self.sample_every, 0.05))
        self.log.poll()
        end_wall = time.time()
        seconds = time.monotonic() - t0
        worst = self.log.worst_gap(now=end_wall, members=self.members)
        after = [s for s in samples if s[0] >= self.warmup
                 and s[1] is not None]
        result = {
            "members": len(self.members),
            "interval_s": self.interval,
            "seed": self.seed,
            "seconds": round(seconds, 1),
            "warmup_s": self.warmup,
            "checks": self.log.total - start_checks,
            "checks_per_second": round(
                (self.log.total - start_checks) / max(seconds, 1e-9), 1),
            "flips": self.flips,
            "verdicts": dict(self.log.verdicts),
            "checker_pids": sorted({p for _, p in self.log.checkers}),
            "check_pids": dict(self.log.check_pids),
            "rss_samples": [(t, kb) for t, kb, _ in samples],
            "rss_base_kb": base[0] if base else None,
            "rss_max_kb": max((kb for _, kb, _ in after), default=None),
            "rss_end_kb": after[-1][1] if after else None,
            "worst_gap_s": round(worst[0], 4),
            "worst_gap_member": worst[1],
            "worst_gap_kind": worst[2],
            "gaps_over_3_intervals": self.log.gaps_over(3 * self.interval),
        }
        same_pid = base is not None and all(s[2] == base[1] for s in samples
                                            if s[0] >= self.warmup)
        result["rss_same_process"] = same_pid
        if base and result["rss_max_kb"] is not None:
            result["rss_growth_bytes"] = \
                (result["rss_max_kb"] - base[0]) * 1024
            result["rss_end_growth_bytes"] = \
                (result["rss_end_kb"] - base[0]) * 1024
        else:
            result["rss_growth_bytes"] = None
            result["rss_end_growth_bytes"] = None
        return result


def verdict(result, min_checks, max_growth=MiB, max_gap_intervals=3):
    """Problems with a soak result (empty list: it passed).  A member may
    go less than ``max_gap_intervals`` intervals without a check."""
    problems = []
    if result["checks"] < min_checks:
        problems.append(f"only {result['checks']} checks ran, wanted "
                        f"{min_checks} or more")
    if result["rss_growth_bytes"] is None:
        problems.append("no VmRSS samples of the checker after the warm-up")
    elif result["rss_growth_bytes"] > max_growth:
        problems.append(
            f"the checker's VmRSS grew by {result['rss_growth_bytes']} "
            f"bytes after the warm-up (limit {max_growth}): "
            f"{result['rss_base_kb']} kB -> max {result['rss_max_kb']} kB")
    if not result["rss_same_process"]:
        problems.append("the checker moved to another process during the "
                        f"soak: {result['checker_pids']}")
    limit = max_gap_intervals * result["interval_s"]
    if result["worst_gap_s"] >= limit:
        problems.append(
            f"member {result['worst_gap_member']} went "
            f"{result['worst_gap_s']:.3f} s without a check "
            f"({result['worst_gap_kind']}); the limit is under "
            f"{max_gap_intervals} intervals ({limit:.3f} s); members with "
            f"gaps of three intervals or more: "
            f"{result['gaps_over_3_intervals']}")
    return problems


def _exit_on_sigterm():
    """SIGTERM (e.g. from timeout or make) unwinds like Ctrl-C, so httpd
    and the simulator are still stopped."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=50)
    ap.add_argument("--interval-ms", type=int, default=100)
    ap.add_argument("--checks", type=int, default=100_000,
                    help="run until this many checks were logged")
    ap.add_argument("--warmup", type=float, default=20.0,
                    help="seconds before the VmRSS baseline is taken")
    ap.add_argument("--max-seconds", type=float, default=900.0)
    ap.add_argument("--max-growth", type=int, default=MiB,
                    help="allowed VmRSS growth after the warm-up, bytes")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--result", default=os.path.join(
        REPO, "build", "soak-result.json"))
    ap.add_argument("--keep", action="store_true",
                    help="keep the httpd ServerRoot and logs")
    args = ap.parse_args(argv)
    _exit_on_sigterm()

    module = os.environ.get("BBS_MODULE") or os.path.join(
        REPO, ".libs", "mod_bbstatus.so")
    if not os.path.isfile(module):
        print(f"soak: {module} is not built (run make)", file=sys.stderr)
        return 2
    work = tempfile.mkdtemp(prefix="bbs-soak-")
    nodes = h = None
    result = None
    problems = []
    started = time.time()
    try:
        nodes = SimNodes.start(many=args.members, base_name="n", tmpdir=work)
        names = nodes.names()
        h = Httpd(os.path.join(work, "httpd"), name="soak",
                  module_loglevel="debug")
        ports = [nodes.port(n) for n in names]
        h.start(soak_body(ports, args.interval_ms))
        soak = Soak(h, nodes, names, args.interval_ms, warmup=args.warmup,
                    seed=args.seed, progress=lambda el, n, s: print(
                        f"soak: {el:6.0f} s  {n:7d} checks  VmRSS "
                        f"{s[-1][1] if s else '?'} kB", flush=True))
        soak.wait_first_checks(10 + 5 * soak.interval)
        result = soak.run(target_checks=args.checks,
                          max_seconds=args.max_seconds)
        soak.settle()
        members = json_members(h)
        result["json_checks_total"] = sum(
            m.get("checks") or 0 for m in members.values())
        result["httpd_alive"] = h.is_running()
        problems = verdict(result, args.checks, args.max_growth)
        if not result["httpd_alive"]:
            problems.append("httpd is not running any more")
    except (HttpdError, AssertionError, OSError) as e:
        problems.append(f"soak could not run: {e}")
    finally:
        if h is not None:
            h.stop()
            bad = h.unexpected_log_lines(
                allow=soak_allow([nodes.port(n) for n in nodes.names()])
                if nodes else ())
            if bad:
                problems.append(f"{len(bad)} unexpected error_log lines, "
                                f"first: {bad[:5]}")
        if nodes is not None:
            nodes.stop()
        if args.keep:
            print(f"soak: ServerRoot and logs kept in {work} "
                  f"({h.root if h else ''})")
        else:
            if h is not None and h.root != h.link:
                shutil.rmtree(h.root, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
    summary = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": round(time.time() - started, 1),
        "module": module,
        "limits": {"checks": args.checks, "max_growth_bytes": args.max_growth,
                   "max_gap_s": 3 * args.interval_ms / 1000.0},
        "result": result,
        "problems": problems,
        "passed": not problems,
    }
    if args.result:
        os.makedirs(os.path.dirname(os.path.abspath(args.result)),
                    exist_ok=True)
        with open(args.result, "w") as f:
            json.dump(summary, f, indent=1)
    if result:
        print(f"soak: {result['checks']} checks of {result['members']} "
              f"members every {result['interval_s'] * 1000:.0f} ms in "
              f"{result['seconds']} s ({result['checks_per_second']}/s), "
              f"{result['flips']} flips")
        print(f"soak: checker VmRSS {result['rss_base_kb']} kB after the "
              f"warm-up, max {result['rss_max_kb']} kB, end "
              f"{result['rss_end_kb']} kB (growth "
              f"{result['rss_growth_bytes']} bytes)")
        print(f"soak: longest time a member went unchecked: "
              f"{result['worst_gap_s'] * 1000:.1f} ms "
              f"({result['worst_gap_kind']}, {result['worst_gap_member']})")
    for p in problems:
        print(f"soak: FAIL: {p}")
    print(f"soak: {'passed' if not problems else 'FAILED'}; result in "
          f"{args.result}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
