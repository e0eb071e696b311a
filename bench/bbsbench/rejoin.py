"""Scenario 7, rejoin: a node back from a restart is cold (a JVM that has
just said RUNNING: slow answers, few at once); how much of the load each
configuration gives it, and what the clients' latency pays for that.
The scenario, its figures, its section of BENCHMARKS.md, its target rows
and its picture (gnuplot, bench/rejoin.gp)."""

import datetime
import json
import os
import re
import shutil
import threading
import time

from .common import (CONFIGS, HERE, RATE, RESTART_LEN, RESTART_STEPS,
                     USER_PATH, WARMUP, fmt, http_get, log, pct,
                     sleep_until)
from .load import PacedLoad
from .procs import log_problems, start_proxy, wait_in_rotation
from .scenarios import node_requests

NAMES = ("n1", "n2", "n3")
NODE = "n3"                  # the node that restarts and comes back cold
# Users: none carries a cookie (the ROUTEID an answer sets is never sent
# back).  The users of the node that restarts were moved to the others
# while it was away, so none is pinned to it when it comes back; users
# pinned to the other nodes would change nothing for it with HAProxy and
# nginx, but httpd's byrequests counts their requests too and makes up for
# them with the requests it chooses (measured: with half the users pinned
# to n1 and n2, httpd sends n3 two thirds of the others, HAProxy a third),
# so the cold node's full share would differ from one proxy to the next.
# Without cookies every request is one the balancer chooses and the full
# share is a third of the load with each of them.
USERS = ("",)
BASE_MS = 5.0                # every node's service time of a page
COLD = {"extra_ms": 200.0, "tau_s": 10.0, "concurrency": 8}
CONNS = 128                  # keep-alive connections of the load
BUCKET = 5.0                 # seconds per bucket of the tables
BEFORE = 12                  # seconds before RUNNING drawn in the picture
TRAIL = 5.0                  # seconds of the picture's running p99


def cold_ms(t):
    """The cold node's service time t seconds after RUNNING (the model)."""
    import math
    return BASE_MS + COLD["extra_ms"] * math.exp(-t / COLD["tau_s"])


class Sampler:
    """Every half second: the cold node's queue (simnode's record); with
    the module's warm-up, every second the JSON diagnostics (warmup,
    answer_ms of each member), both stamped with time.time()."""

    def __init__(self, nodes, port=None):
        self.nodes = nodes
        self.port = port
        self.queue = []
        self.diag = []
        self.errors = 0
        self._stop = threading.Event()
        self._thread = None
        self.node_port = {nodes.port(n): n for n in NAMES}

    def start(self):
        self._thread = threading.Thread(target=self._run, name="sampler",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(15)
        return self

    def _run(self):
        k = 0
        while not self._stop.is_set():
            t = time.time()
            try:
                r = self.nodes.node(NODE)
                self.queue.append([t, r["queued"], r["in_service"],
                                   r["cold_extra_ms"]])
            except Exception:
                self.errors += 1
            if self.port and k % 2 == 0:
                try:
                    self.diag.append([t, self._members()])
                except Exception:
                    self.errors += 1
            k += 1
            self._stop.wait(max(0.0, t + 0.5 - time.time()))

    def _members(self):
        code, body = http_get(self.port, "/bbstatus?format=json",
                              timeout=5.0)
        if code != 200:
            raise RuntimeError(f"/bbstatus answered {code}")
        out = {}
        for b in json.loads(body)["balancers"]:
            for m in b["members"]:
                port = int(m["name"].rsplit(":", 1)[1].rstrip("/"))
                node = self.node_port.get(port)
                if node:
                    w = m.get("warmup")
                    out[node] = {
                        "answer_ms": m.get("answer_ms"),
                        "in_rotation": m.get("in_rotation"),
                        "decision": m.get("decision"),
                        "share": w["share"] if w else None,
                        "held": w["held"] if w else None,
                        "text": w["text"] if w else None}
        return out


def rejoin_one(bench, cfg):
    P = bench.P
    window = P["rejoin_window"]
    nodes = bench.nodes([(n, "bitbucket", "RUNNING") for n in NAMES])
    h = load = sampler = None
    try:
        for n in NAMES:
            nodes.set(n, delay_ms=BASE_MS,
                      **({"cold": COLD} if n == NODE else {}))
        h = start_proxy(bench, cfg, [nodes.port(n) for n in NAMES],
                        f"rejoin-{cfg}", routes=NAMES)
        load = PacedLoad(h.port, RATE, users=USERS, conns=CONNS).start()
        in_rot = wait_in_rotation(load, NAMES, deadline=10)
        time.sleep(P["rejoin_steady"])
        t_restart = time.time()
        nodes.script(NODE, [list(s) for s in RESTART_STEPS])
        diag_port = h.port if CONFIGS[cfg].get("module") else None
        sampler = Sampler(nodes, diag_port).start()
        sleep_until(t_restart + RESTART_LEN)
        t_run = None
        end = time.time() + 5
        while t_run is None and time.time() < end:
            t_run = next((e["t"] for e in nodes.events()
                          if e["node"] == NODE and e["state"] == "RUNNING"
                          and e["t"] > t_restart), None)
            if t_run is None:
                time.sleep(0.05)
        if t_run is None:
            raise RuntimeError(f"{NODE} did not say RUNNING")
        sleep_until(t_run + window + 0.5)
        recs = load.stop()
        load = None
        sampler.stop()
        at_node = node_requests(nodes, NAMES)
        problems, n_problems = log_problems(h)
    finally:
        bench.stop_all(sampler, load, h, nodes)
    recs = sorted((r for r in recs if r.t_sent is not None),
                  key=lambda r: r.t_sched)
    res = analyse_rejoin(cfg, recs, t_restart, t_run, window, at_node,
                         sampler)
    res.update(in_rotation_at_start=in_rot, log_problems=problems,
               log_problem_count=n_problems)
    return res


def _lat(r):
    """From the time the request was due to its answer (or failure): the
    wait for a free connection of the load generator counts too."""
    return r.t_done - r.t_sched


def analyse_rejoin(cfg, recs, t_restart, t_run, window, at_node, sampler):
    win = [r for r in recs if t_run <= r.t_sched < t_run + window]
    restart = [r for r in recs if t_restart <= r.t_sched < t_run]
    lat = [_lat(r) for r in win]
    cold_lat = [_lat(r) for r in win if r.node == NODE]
    buckets = []
    for k in range(int(window / BUCKET)):
        a = t_run + k * BUCKET
        rs = [r for r in win if a <= r.t_sched < a + BUCKET]
        free = [r for r in rs if not r.user and r.ok]
        buckets.append({
            "t": k * BUCKET,
            "share": (sum(r.node == NODE for r in free) / len(free)
                      if free else None),
            "cold_answers": sum(1 for r in rs if r.node == NODE and r.ok),
            "p99": pct([_lat(r) for r in rs], 99),
            "fail": sum(1 for r in rs if not r.ok)})
    # per second: the share of that second, the p99 of the TRAIL seconds
    # up to its end (one second holds 300 requests, whose p99 is their
    # third slowest: a cold node with 1% of them decides it alone)
    series = []
    for s in range(-BEFORE, int(window)):
        a = t_run + s
        rs = [r for r in recs if a <= r.t_sched < a + 1]
        free = [r for r in rs if not r.user and r.ok]
        trail = [_lat(r) for r in recs
                 if max(a + 1 - TRAIL, t_run if s >= 0 else a - BEFORE)
                 <= r.t_sched < a + 1]
        series.append([s, (100.0 * sum(r.node == NODE for r in free)
                           / len(free)) if free else None,
                       (1000.0 * pct(trail, 99)) if trail else None])
    diag = [[round(t - t_run, 2), m] for t, m in sampler.diag
            if t_run - 2 <= t < t_run + window]
    queue = [[round(t - t_run, 2), q, s, x] for t, q, s, x in sampler.queue
             if t_run <= t < t_run + window]
    kinds = {}
    for r in win + restart:
        if not r.ok:
            k = (f"connection {r.err}" if r.err else
                 f"{r.status} from {'a node' if r.node else 'the proxy'}")
            kinds[k] = kinds.get(k, 0) + 1
    return {
        "config": cfg, "window": window, "t_restart": t_restart,
        "t_run": t_run, "sent": len(win),
        "achieved_rate": len(win) / window,
        "p50": pct(lat, 50), "p99": pct(lat, 99),
        "max": max(lat) if lat else None,
        "failures": sum(1 for r in win if not r.ok),
        "failures_restart": sum(1 for r in restart if not r.ok),
        "failure_kinds": kinds,
        "retried": sum(1 for r in win if r.retried),
        "cold_answers": sum(1 for r in win if r.node == NODE and r.ok),
        "cold_p99": pct(cold_lat, 99),
        "cold_first": min((r.t_sched - t_run for r in win
                           if r.node == NODE and r.ok), default=None),
        "cold_at_node": sum(1 for t in at_node.get(NODE, ())
                            if t_run <= t < t_run + window),
        "max_queued": max((q for _, q, _, _ in queue), default=None),
        "buckets": buckets, "series": series, "diag": diag,
        "queue": queue, "sampler_errors": sampler.errors,
    }


def scenario_rejoin(bench, configs):
    runs = []
    for cfg in configs:
        log(f"rejoin: {cfg}")
        res = rejoin_one(bench, cfg)
        log(f"  p50 {fmt(res['p50'] * 1000, 1)} ms, p99 "
            f"{fmt(res['p99'] * 1000, 1)} ms, max "
            f"{fmt(res['max'] * 1000)} ms, failures {res['failures']} "
            f"(+{res['failures_restart']} during the restart), shares "
            + " ".join("-" if b["share"] is None else f"{b['share']:.2f}"
                       for b in res["buckets"]))
        runs.append(res)
    return {"runs": runs, "node": NODE, "users": list(USERS),
            "base_ms": BASE_MS, "cold": dict(COLD), "conns": CONNS,
            "bucket": BUCKET, "window": bench.P["rejoin_window"],
            "steady": bench.P["rejoin_steady"], "warmup": WARMUP}


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def _ms(x, nd=0):
    return "n/a" if x is None else fmt(x * 1000.0, nd)


def _share(x):
    return "-" if x is None else f"{100 * x:.0f}%"


def _run(res, cfg):
    return next((r for r in res["runs"] if r["config"] == cfg), None)


def render_rejoin(res, meta, png_rel):
    from .report import log_notes, md_table, section_head
    c = res["cold"]
    W = res["window"]
    out = [section_head("7. Rejoin of a cold node", meta)]
    out.append(
        f"Three Bitbucket nodes behind the balancer in the deployed shape "
        f"(the `<VirtualHost>` with sticky sessions of section 1), a "
        f"steady {RATE} requests/s (`GET {USER_PATH}`, paced, "
        f"{res['conns']} keep-alive connections). No request carries a "
        f"cookie (the `ROUTEID` an answer sets is never sent back): the "
        f"users of {res['node']} were moved to the other nodes while it was "
        f"away, so each request it gets is one the balancer chose to send "
        f"it, and its full share is a third of the load (about "
        f"{RATE // 3} a second) with every proxy. (With users pinned to "
        f"the other two, as in section 1, the full share would differ: "
        f"httpd's byrequests counts the pinned requests too and makes up "
        f"for them with the unpinned ones, two thirds of which then go to "
        f"the third node, while HAProxy and nginx balance only the "
        f"unpinned ones.) Every node serves a page in "
        f"{res['base_ms']:g} ms. After "
        f"{res['steady']:g} s, {res['node']} restarts (STOPPING 3 s, "
        f"STOPPED 3 s, STARTING 4 s) and comes back **cold**: a page "
        f"takes {res['base_ms']:g} ms + {c['extra_ms']:g} ms × "
        f"e^(−t/{c['tau_s']:g} s), t the time since it said RUNNING "
        f"({fmt(cold_ms(0))} ms at first, {fmt(cold_ms(10))} ms after "
        f"10 s, {fmt(cold_ms(20), 1)} ms after 20 s, "
        f"{fmt(cold_ms(30), 1)} ms after 30 s), and it serves at most "
        f"{c['concurrency']} at once; the others queue. At first it can "
        f"serve {c['concurrency'] / cold_ms(0) * 1000:.0f} pages a second, "
        f"fewer than its full share: a node given its share at once "
        f"queues.\n\n"
        "Why this model: a JVM that has just started (Bitbucket, Jira, "
        "Confluence, Bamboo, Crowd) interprets its code until the JIT has "
        "compiled the hot paths, and its caches and index readers fill "
        "with the first requests: its first answers are slow and get "
        "faster over tens of seconds, and its bounded thread and "
        "database pools mean that more requests than it can serve wait. "
        "The exponential is the simplest curve with both features; 200 ms "
        "falling with a 10 s time constant makes a node that is 40 times "
        "slower than its peers at first, twice as slow after about 37 s "
        "and within 10% of them after about 60 s. "
        "The model lives in the simulated node (`delay_ms` and `cold` in "
        "`tests/nodes/simnode.py`), so every proxy faces the same node.\n\n"
        f"Measured over the {W:g} s after {res['node']} said RUNNING "
        "(simnode's timestamp), by the time each request was due: "
        "*latency* from when it was due to its answer (a wait for a free "
        "connection of the load generator counts), every request; "
        "*failed*: answers other than 2xx and connection errors, in the "
        "window (and, apart, during the restart before it); *share*: "
        f"{res['node']}'s part of the answered requests (full share: 33%); "
        f"*queued at {res['node']}*: the most requests "
        "waiting for one of its slots (simnode's record, every 0.5 s).\n\n")
    rows = []
    for r in res["runs"]:
        rows.append([
            CONFIGS[r["config"]]["label"], _ms(r["p50"], 1),
            f"**{_ms(r['p99'], 1)}**", _ms(r["max"]),
            f"**{fmt(r['failures'])}**" + (
                f" (+{r['failures_restart']} in the restart)"
                if r["failures_restart"] else ""),
            fmt(r["cold_answers"]), _ms(r["cold_p99"]),
            fmt(r["max_queued"]),
            f"{r['achieved_rate']:.0f}"])
    out.append(md_table(
        ["configuration", "p50 (ms)", "p99 (ms)", "max (ms)",
         "failed", f"answered by {res['node']}",
         f"p99 of {res['node']}'s (ms)", f"queued at {res['node']} (most)",
         "requests/s"], rows))
    head = ["configuration"] + [
        f"{b['t']:g}–{b['t'] + res['bucket']:g} s"
        for b in res["runs"][0]["buckets"]]
    out.append(f"\n{res['node']}'s share of the answered requests, "
               f"per {res['bucket']:g} s after RUNNING (full share 33%):\n\n")
    out.append(md_table(head, [
        [CONFIGS[r["config"]]["label"]] + [_share(b["share"])
                                          for b in r["buckets"]]
        for r in res["runs"]]))
    out.append(f"\nClient p99 (ms) per {res['bucket']:g} s after RUNNING:"
               "\n\n")
    out.append(md_table(head, [
        [CONFIGS[r["config"]]["label"]] + [_ms(b["p99"])
                                          for b in r["buckets"]]
        for r in res["runs"]]))
    wr = _run(res, "bbstatus-warmup")
    if wr and wr["diag"]:
        out.append(diag_table(res, wr, md_table))
    if png_rel:
        out.append(f"\n![{res['node']}'s share and the client p99 after it "
                   f"rejoins, one line per configuration]({png_rel})\n")
    out.append(why_text(res))
    notes = log_notes(res["runs"])
    if notes:
        out.append(notes + log_times(res))
    return "".join(out)


LOG_TIME_RX = re.compile(r"^\[\w+ (\w+ \d+ [\d:]+\.\d+ \d+)\]")


def log_times(res):
    """When the error_log lines of the notes were written, from RUNNING,
    and what AH00484/AH10159 mean here."""
    out = []
    for r in res["runs"]:
        ts = []
        for line in r.get("log_problems") or ():
            m = LOG_TIME_RX.match(line)
            if m:
                try:
                    t = datetime.datetime.strptime(
                        m.group(1), "%b %d %H:%M:%S.%f %Y").timestamp()
                except ValueError:
                    continue
                ts.append(f"{t - r['t_run']:+.1f} s")
        if ts:
            out.append(f"{CONFIGS[r['config']]['label']}: "
                       + ", ".join(ts))
    if not out:
        return ""
    return ("\nThe lines' times from RUNNING: " + "; ".join(out) + ". AH00484 and AH10159 say that "
            "all, or all but a few, of httpd's 50 workers (2 children × 25 "
            "threads) were busy: each request waiting for the cold node "
            "holds one. A line from before the restart (which began "
            f"{RESTART_LEN:g} s before RUNNING) comes from the first "
            "second of the load, when its connections open, outside the "
            "window measured.\n")


def diag_table(res, wr, md_table):
    """What the module said during the ramp: the last JSON diagnostics of
    each bucket."""
    rows = []
    for b in wr["buckets"]:
        a = b["t"]
        samples = [m for t, m in wr["diag"] if a <= t < a + res["bucket"]]
        if not samples:
            continue
        m = samples[-1]
        me = m.get(res["node"], {})
        peers = [m[n]["answer_ms"] for n in NAMES
                 if n != res["node"] and n in m
                 and m[n]["answer_ms"] is not None]
        rows.append([
            f"{a:g}–{a + res['bucket']:g} s",
            "-" if me.get("share") is None else f"{me['share']:.3f}",
            "-" if me.get("held") is None else
            ("yes" if me["held"] else "no"),
            fmt(me.get("answer_ms"), 1),
            ", ".join(fmt(x, 1) for x in peers) or "-",
            f"{cold_ms(a + res['bucket']):.1f}"])
    return (f"\nThe module's diagnostics during the ramp "
            f"(`{CONFIGS['bbstatus-warmup']['label']}`, `/bbstatus?format="
            f"json` once a second, the last of each bucket; "
            f"`warmup.share`: the part of its full share it is offered, "
            f"`null` (-) while no ramp runs; *model* is the cold node's "
            f"service time at the end of the bucket):\n\n"
            + md_table(["after RUNNING", "warmup.share", "warmup.held",
                        f"answer_ms of {res['node']}",
                        "answer_ms of its peers", "model (ms)"], rows))


def why_text(res):
    wr, hs = _run(res, "bbstatus-warmup"), _run(res, "haproxy-slowstart")
    if not (wr and hs and wr["p99"] and hs["p99"]):
        return ""
    ratio = wr["p99"] / hs["p99"]
    held = [t for t, m in wr["diag"]
            if t >= 0 and (m.get(res["node"]) or {}).get("held")]
    free = [t for t, m in wr["diag"] if t >= 0 and held and t > held[-1]
            and (m.get(res["node"]) or {}).get("share") is not None]
    txt = (f"\nBBSTATUS with the ramp: p99 {_ms(wr['p99'], 1)} ms, "
           f"{ratio:.2f} × HAProxy slowstart's {_ms(hs['p99'], 1)} ms, "
           f"{wr['failures']} failed.")
    if held:
        txt += (f" The module held {res['node']} at its floor while its "
                f"answers took more than twice its peers' (the last "
                f"reading that says held: {held[-1]:g} s after RUNNING)"
                + (", then its share grew over the rest of the window"
                   if free else "")
                + f"; HAProxy's slowstart grows the weight from the start "
                f"whatever the node answers, so {res['node']}'s slowest "
                f"first seconds get "
                f"{_share(hs['buckets'][0]['share'])} to "
                f"{_share(hs['buckets'][2]['share'])} of the requests in "
                f"its first 15 s, against "
                f"{_share(wr['buckets'][0]['share'])} with the ramp.")
    return txt + "\n"


def rejoin_targets(res):
    """Rows of the targets table."""
    rows = []
    wr, hs = _run(res, "bbstatus-warmup"), _run(res, "haproxy-slowstart")
    if wr and hs and wr["p99"] is not None and hs["p99"]:
        ok = wr["p99"] <= hs["p99"] / 2
        why = ""
        if not ok:
            why = (f"{res['node']} got {_share(wr['buckets'][0]['share'])} "
                   f"of the requests in its first "
                   f"{res['bucket']:g} s and its own p99 was "
                   f"{_ms(wr['cold_p99'])} ms; see the diagnostics table "
                   f"of section 7")
        rows.append((f"rejoin: BBSTATUS + BBStatusWarmup {res['warmup']}s "
                     f"p99 ≤ half of HAProxy slowstart {res['warmup']}s's",
                     f"{_ms(wr['p99'], 1)} vs {_ms(hs['p99'], 1)} ms "
                     f"({wr['p99'] / hs['p99']:.2f} ×)",
                     "met" if ok else "missed", why))
    if wr:
        ok = wr["failures"] == 0
        rows.append((f"rejoin: 0 failed requests with BBSTATUS + "
                     f"BBStatusWarmup {res['warmup']}s",
                     fmt(wr["failures"]) + (
                         f" (+{wr['failures_restart']} during the restart)"
                         if wr["failures_restart"] else ""),
                     "met" if ok else "missed",
                     "" if ok else ", ".join(
                         f"{k} {v}" for k, v in wr["failure_kinds"].items())))
        sh = [b["share"] for b in wr["buckets"] if b["share"] is not None]
        if sh:
            first, peak = sh[0], max(sh)
            ok = peak >= 3 * first and peak > 0
            rows.append((
                f"rejoin: the ramp shows in the share ({res['node']}'s "
                f"highest {res['bucket']:g} s share ≥ 3 × its first)",
                f"{_share(first)} → {_share(peak)}",
                "met" if ok else "missed",
                "" if ok else "the share stayed near its first value over "
                "the window: see the share and diagnostics tables of "
                "section 7"))
    return rows


# ---------------------------------------------------------------------------
# Picture
# ---------------------------------------------------------------------------

def draw_rejoin(paths, res, png_path):
    if not shutil.which("gnuplot"):
        log("gnuplot not found: no rejoin picture")
        return False
    from .common import run_cmd
    args = [f"n={len(res['runs'])}"]
    for k, r in enumerate(res["runs"], 1):
        dat = paths.data_path(f"rejoin-{r['config']}.dat")
        with open(dat, "w") as f:
            f.write(f"# t(s after RUNNING) share(%) "
                    f"p99(ms)  {r['config']}\n")
            for t, share, p99 in r["series"]:
                f.write(f"{t} {'NaN' if share is None else f'{share:.2f}'} "
                        f"{'NaN' if p99 is None else f'{p99:.2f}'}\n")
        title = (f"{CONFIGS[r['config']]['label']} (p99 "
                 f"{_ms(r['p99'])} ms, {r['failures']} failed)")
        args.append(f"f{k}='{dat}'; t{k}='{title}'")
    args.append(f"W={res['window']:g}; B={BEFORE}; R={RESTART_LEN:g}; "
                f"title='{res['node']} restarts under {RATE} requests/s and "
                f"comes back cold ({res['base_ms']:g} ms + "
                f"{res['cold']['extra_ms']:g} ms e^(-t/"
                f"{res['cold']['tau_s']:g} s), {res['cold']['concurrency']}"
                f" at once)'")
    os.makedirs(os.path.dirname(png_path) or ".", exist_ok=True)
    out = run_cmd(["gnuplot", "-e", "; ".join(args) + f"; out='{png_path}'",
                   os.path.join(HERE, "rejoin.gp")], timeout=60)
    if not os.path.exists(png_path):
        log(f"gnuplot did not draw {png_path}: {out}")
        return False
    return True
