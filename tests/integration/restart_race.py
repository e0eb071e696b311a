#!/usr/bin/python3
"""Full restarts of a real apache2 under request load, with or without
mod_bbstatus, counting the children that crash and naming where.

    /usr/bin/python3 tests/integration/restart_race.py [--restarts N]
        [--without-module] [--mpm event|worker|prefork] [--graceful] [--keep]

With BBS_APACHE2, BBS_APACHE_MODULES and BBS_MODULE it runs another httpd
build, as make check-compat does.

One balancer of four simulated RUNNING nodes, checked every 200 ms: by
hcmethod=BBSTATUS with the module, by mod_proxy_hcheck's hcmethod=GET on
/status without it.  One client sends GET requests through the proxy, one
connection each, while the script runs ``apache2 -k restart`` N times,
0.5 s apart (what test_500_robustness.py::test_restarts_under_load does
five times).  Children dump core into the ServerRoot; for every child
that crashed the faulting thread's backtrace is printed (gdb) and whether
it is the event MPM's own race at an ungraceful stop
(``httpd.event_stop_race``); the summary also counts that race's other
face, AH03092 (``httpd.EVENT_STOP_LINGER``).  The ServerRoot is kept when
a child crashed (or with --keep).  Exit status 0: no crash (and with
--graceful every request answered 200); 1: otherwise.
"""

import argparse
import os
import random
import re
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "nodes"))

from bbs import member_url  # noqa: E402
from httpd import (EVENT_STOP_LINGER, Httpd, event_stop_race,  # noqa: E402
                   wait_until)
from httpd import version as httpd_version  # noqa: E402
from simclient import SimNodes  # noqa: E402

CRASH = re.compile(r"exit signal (Segmentation|Bus error|Aborted)")


class Client(threading.Thread):
    """GET / through the proxy, one connection per request, until stopped."""

    def __init__(self, h, timeout):
        super().__init__(daemon=True)
        self.h, self.timeout, self.counts = h, timeout, {}
        self.slowest = 0.0          # s, of the requests answered
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            t = time.monotonic()
            try:
                key = self.h.get("/", timeout=self.timeout)[0]
                self.slowest = max(self.slowest, time.monotonic() - t)
            except Exception as e:  # noqa: BLE001 - every failure counts
                key = type(e).__name__
            self.counts[key] = self.counts.get(key, 0) + 1


def crashes(h, since=0):
    """[(pid, line)] of the children that crashed (not those killed)."""
    return [(pid, line) for pid, line in h.crashed_children(since)
            if CRASH.search(line)]


def body(ports, with_module):
    method = ("hcmethod=BBSTATUS" if with_module
              else "hcmethod=GET hcuri=/status")
    lines = ["<Proxy balancer://bb>"]
    lines += [f"    BalancerMember {member_url(p)} {method} hcinterval=200ms "
              f"hcpasses=1 hcfails=1" for p in ports]
    lines += ["</Proxy>", "ProxyPass / balancer://bb/", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--restarts", type=int, default=100)
    ap.add_argument("--without-module", action="store_true")
    ap.add_argument("--mpm", default="event")
    ap.add_argument("--graceful", action="store_true",
                    help="graceful restarts 0 to 0.25 s apart instead (the "
                    "first half of test_restarts_under_load)")
    ap.add_argument("--timeout", type=float, default=5.0,
                    help="the client's timeout per request, s (default 5, "
                    "as the test's)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    with_module = not args.without_module

    tmp = tempfile.mkdtemp(prefix="bbs-race-")
    with SimNodes.start(nodes=[(n,) for n in "abcd"], tmpdir=tmp) as nodes:
        ports = [nodes.port(n) for n in nodes.names()]
        h = Httpd(os.path.join(tmp, "httpd"), mpm=args.mpm,
                  load_bbstatus=with_module, core_dumps=True)
        try:
            h.start(body(ports, with_module))
            wait_until(lambda: h.get("/")[0] == 200, 10, what="a first 200")
            client = Client(h, args.timeout)
            client.start()
            t0 = time.monotonic()
            cores = {}
            rng = random.Random(500)
            for i in range(args.restarts):
                if args.graceful:
                    off = h.graceful()
                    time.sleep(rng.uniform(0, 0.25))
                else:
                    off = h.restart()
                    time.sleep(0.5)
                # each core before the next crash overwrites it
                for pid, _ in crashes(h, off):
                    cores[pid] = h.take_core(pid)
                if (i + 1) % 50 == 0:
                    print(f"{i + 1} restarts, {len(cores)} crashed children",
                          flush=True)
            client.done.set()
            client.join(10)
            took = time.monotonic() - t0
        finally:
            h.stop()
        crashed = crashes(h)
        race = 0
        for pid, line in crashed:
            core = cores.get(pid)
            known, bt = (event_stop_race(core, pid) if core
                         else (False, "no core file"))
            race += known
            print(f"{line}\n  {'the event MPM race' if known else 'OTHER'}"
                  f": {core}\n{bt}")
        lingering = len(re.findall(EVENT_STOP_LINGER, h.error_log()))
        kind = "graceful" if args.graceful else "full"
        print(f"{'with' if with_module else 'without'} mod_bbstatus, "
              f"httpd {'.'.join(map(str, httpd_version()))}, "
              f"{args.mpm} MPM: {args.restarts} {kind} restarts in "
              f"{took:.0f} s, "
              f"requests {client.counts} (slowest answered in "
              f"{client.slowest:.2f} s), {len(crashed)} child(ren) crashed, "
              f"{race} of them in the event MPM's race at a full restart, "
              f"{lingering} AH03092 line(s)")
    if crashed or args.keep:
        print(f"kept {tmp} (ServerRoot {h.root})")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = args.graceful and set(client.counts) - {200}
    return 1 if crashed or failed else 0


if __name__ == "__main__":
    sys.exit(main())
