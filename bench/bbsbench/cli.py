"""Command line: which scenarios and configurations to run, where the
report goes; runs them and writes the report."""

import argparse
import datetime
import json
import os
import shlex
import shutil
import signal
import sys
import time

from .common import (CONFIGS, CONFIG_ORDER, REJOIN_ORDER, REPO, SCENARIOS,
                     log)
from .procs import Bench
from .rejoin import draw_rejoin, scenario_rejoin
from .report import draw_picture, machine_info, write_report
from .scenarios import (scenario_backup, scenario_detection,
                        scenario_overhead, scenario_rolling, scenario_scale)

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
    p.add_argument("--rejoin-png", default=None,
                   help="the rejoin picture (default: "
                        "<dir of --out>/bench/rejoin.png)")
    p.add_argument("--quick", action="store_true",
                   help="smaller counts (a few minutes), for development")
    p.add_argument("--scenario", action="append", default=[],
                   help="run only these (repeatable or comma-separated): "
                        + ", ".join(SCENARIOS))
    p.add_argument("--configs", default=None,
                   help="configurations for rolling, backup, detection "
                        "and rejoin (comma-separated; default for the "
                        "first three: " + ", ".join(CONFIG_ORDER)
                        + "; for rejoin: " + ", ".join(REJOIN_ORDER) + ")")
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
    p.add_argument("--note", default=None,
                   help="a line about the conditions of the run (a shared "
                        "or busy machine, say), printed next to the figures"
                        "; with --from-json too")
    a = p.parse_args(argv)
    wanted = [s.strip() for x in a.scenario for s in x.split(",")
              if s.strip()] or list(SCENARIOS)
    for s in wanted:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}; one of {', '.join(SCENARIOS)}")
    a.scenarios = [s for s in SCENARIOS if s in wanted]
    given = [c.strip() for c in (a.configs or "").split(",") if c.strip()]
    for c in given:
        if c not in CONFIGS:
            p.error(f"unknown configuration {c!r}; one of "
                    f"{', '.join(CONFIGS)}")
    a.config_list = given or list(CONFIG_ORDER)
    a.rejoin_configs = given or list(REJOIN_ORDER)
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
    rpng = os.path.abspath(a.rejoin_png) if a.rejoin_png else os.path.join(
        os.path.dirname(out), "bench", "rejoin.png")
    if a.from_json:
        return render_again(a.from_json, out, png, a.workdir, a.note, rpng)
    cmd = "/usr/bin/python3 bench/run.py " + shlex.join(
        argv if argv is not None else sys.argv[1:])
    meta = {"quick": a.quick, "scenarios": a.scenarios,
            "command": cmd.strip(),
            "started": datetime.datetime.now().astimezone().strftime(
                "%Y-%m-%d %H:%M %Z"),
            "load_before": os.getloadavg(), "machine": machine_info(),
            "note": a.note,
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
        if "rejoin" in a.scenarios:
            results["rejoin"] = scenario_rejoin(bench, a.rejoin_configs)
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
    rpng_rel = None
    if "rejoin" in results and draw_rejoin(bench, results["rejoin"], rpng):
        rpng_rel = os.path.relpath(rpng, os.path.dirname(out))
        log(f"picture: {rpng}")
    write_report(out, results, meta, png_rel, rpng_rel)
    log(f"wrote {out} in {time.time() - t_begin:.0f} s")
    return 0


def render_again(path, out, png, workdir, note=None, rpng=None):
    with open(path) as f:
        doc = json.load(f)
    meta, results = doc["meta"], doc["results"]
    if note is not None:
        meta["note"] = note
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
    rpng_rel = None
    if "rejoin" in results and rpng and draw_rejoin(
            Paths(), results["rejoin"], rpng):
        rpng_rel = os.path.relpath(rpng, os.path.dirname(out))
    write_report(out, results, meta, png_rel, rpng_rel)
    log(f"wrote {out} from {path}")
    return 0
