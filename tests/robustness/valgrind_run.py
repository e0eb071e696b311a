#!/usr/bin/env python3
"""mod_bbstatus under valgrind (memcheck): a single-process httpd
(``apache2 -X``) checks members that answer with the whole hostile
catalogue of the simulated nodes, and members whose state flips, for about
a minute while the diagnostics are requested; then httpd is stopped with
SIGTERM and valgrind's report is read.

It fails when valgrind reports
  * any invalid read, invalid write, invalid or mismatched free, or jump to
    an invalid address (wherever it happens: the module can cause them in
    APR or httpd code) -- except the one stock apache2 -X makes at exit
    now and then without mod_bbstatus too (see stock_exit_race);
  * any other error whose stack has a frame in mod_bbstatus (uninitialised
    values, overlapping copies, bad syscall parameters, ...);
  * a definitely lost block whose allocation stack has a frame in
    mod_bbstatus;
or when the run did not mean anything (a member was never checked) or
httpd did not stop after SIGTERM.  Definite leaks elsewhere (httpd, APR,
libc) are listed, not judged.

When httpd does not stop, it is killed and the errors valgrind found
until then are read from the XML it wrote so far (there is no leak report
then); with --no-valgrind the stacks of its threads are written first
(gdb).

Command line (``make check-valgrind``)::

    valgrind_run.py [--seconds 60] [--out build/valgrind] [--keep]
                    [--no-valgrind]

Output in --out: valgrind.xml (valgrind's report), valgrind.log, error_log
and access_log (httpd's), summary.json, and threads-on-hang.txt when
httpd did not stop without valgrind.  Exit status 0 when clean,
1 when not, 2 when the run could not be set up (e.g. valgrind missing:
``apt-get install valgrind``).
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
REPO = os.path.dirname(TESTS)
for _p in (HERE, os.path.join(TESTS, "integration"),
           os.path.join(TESTS, "nodes")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from httpd import APACHE2, Httpd, _base_env, wait_until  # noqa: E402
from simclient import SimNodes  # noqa: E402
from soak import CheckLog, member_url  # noqa: E402

# the hostile answers a member gets, one node each
HOSTILE = ("refuse", "reset", "empty", "garbage", "http09", "redirect",
           "huge", "deep", "drip", "bad_chunk", "invalid_utf8", "html200",
           "gzip")
# nodes whose state flips while the run goes on
FLIPPERS = ("flip1", "flip2", "flip3")
FLIP_STATES = ("RUNNING", "RUNNING", "STARTING", "MAINTENANCE", "STOPPING",
               "ERROR", "FIRST_RUN", "STOPPED")
# one more node cycles through every answer, slow ones included
CHAOS = "chaos"
CHAOS_MODES = HOSTILE + ("normal", "hang", "reset_headers", "reset_body",
                         "headers_never_end", "short_body", "status401",
                         "nul")
ALL_NODES = HOSTILE + FLIPPERS + (CHAOS,)

# errors that are wrong wherever they happen
MEMORY_ERRORS = ("InvalidRead", "InvalidWrite", "InvalidFree",
                 "MismatchedFree", "InvalidJump", "InvalidMemPool")
MODULE_SOURCES = ("mod_bbstatus", "bbs_")

VALGRIND_ARGS = (
    "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite",
    "--errors-for-leak-kinds=definite", "--error-exitcode=99",
    "--trace-children=no", "--vgdb=no",
    # httpd unloads its modules before valgrind reports leaks; keep their
    # symbols so the stacks still name mod_bbstatus
    "--keep-debuginfo=yes", "--num-callers=40",
)

BODY = """\
BBStatusTimeout 2
<Proxy balancer://vg>
{members}</Proxy>
<Proxy balancer://vgdeep>
    BalancerMember {deep} hcmethod=BBSTATUS hcinterval=1 hcpasses=1 hcfails=1
    BalancerMember {flip3} hcmethod=BBSTATUS hcinterval=1 hcpasses=1 hcfails=1
    BBStatusMaxBody 1M
</Proxy>
ProxyPass /bbstatus !
ProxyPass /server-status !
ProxyPass /deep/ balancer://vgdeep/
ProxyPass / balancer://vg/
<Location /bbstatus>
    SetHandler bbstatus
</Location>
<Location /server-status>
    SetHandler server-status
</Location>
"""

REQUESTS = ("/bbstatus?format=json", "/bbstatus?format=prometheus",
            "/bbstatus?format=html", "/bbstatus?format=bogus",
            "/server-status", "/server-status?auto", "/x", "/deep/x")


def valgrind_command(valgrind, xml_path, log_path, h):
    """The command line: valgrind around a single-process apache2 using
    the configuration ``h.write_conf()`` wrote (without valgrind when
    ``valgrind`` is None)."""
    httpd = [APACHE2, "-X", "-d", h.root, "-f", h.conf_path]
    if valgrind is None:
        return httpd
    return [valgrind, *VALGRIND_ARGS, "--xml=yes", f"--xml-file={xml_path}",
            f"--log-file={log_path}", *httpd]


# --- reading valgrind's reports --------------------------------------------

def _is_module_frame(fn_file_obj):
    return any(s and (s.endswith("mod_bbstatus.so")
                      or os.path.basename(s).startswith(MODULE_SOURCES))
               for s in fn_file_obj)


def parse_report(xml_path):
    """-> (errors, complete): every <error> of valgrind's XML as {kind,
    what, bytes, module, frames}.  A report cut short (the process was
    killed) is read up to its last complete error."""
    try:
        with open(xml_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"no valgrind XML report: {e}") from None
    complete = "</valgrindoutput>" in text
    if not complete:
        cut = text.rfind("</error>")
        head = text.find("<valgrindoutput>")
        if head < 0:
            raise ValueError(f"{xml_path} is not a valgrind XML report")
        text = (text[:cut + len("</error>")] if cut >= 0
                else text[:head + len("<valgrindoutput>")]) \
            + "\n</valgrindoutput>\n"
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ValueError(f"cannot read {xml_path}: {e}") from None
    errors = []
    for err in root.iter("error"):
        frames = []
        stack = err.find("stack")
        for fr in (stack.findall("frame") if stack is not None else ()):
            fn, obj, file_, line = (fr.findtext(k) or "" for k in
                                    ("fn", "obj", "file", "line"))
            frames.append((fn, obj, file_, line))
        aux = [a.text or "" for a in err.findall("auxwhat")] + \
            [a.findtext("text") or "" for a in err.findall("xauxwhat")]
        errors.append({
            "kind": err.findtext("kind") or "",
            "what": "; ".join(x.strip() for x in [
                err.findtext("what") or err.findtext("xwhat/text") or "",
                *aux] if x.strip()),
            "bytes": int(err.findtext("xwhat/leakedbytes") or 0),
            "module": any(_is_module_frame((fn, obj, file_))
                          for fn, obj, file_, _ in frames),
            "frames": [f"{fn or '???'} ({file_ or obj}"
                       f"{':' + line if line else ''})"
                       for fn, obj, file_, line in frames[:12]],
        })
    return errors, complete


def stock_exit_race(e):
    """True for the invalid read stock apache2 -X can make at exit, with or
    without mod_bbstatus loaded: after SIGTERM, exit() runs
    apr_pool_terminate, whose apr_allocator_destroy reads memory no longer
    mapped (seen in about one of five runs of an empty configuration)."""
    fns = [f.split(" ", 1)[0] for f in e["frames"]]
    return (e["kind"] == "InvalidRead" and not e["module"] and fns
            and fns[0] == "apr_allocator_destroy"
            and "apr_pool_terminate" in fns
            and any(f in ("exit", "__run_exit_handlers") for f in fns))


def judge(errors):
    """(problems, notes): the errors that fail the run, and the rest."""
    problems, notes = [], []
    for e in errors:
        if stock_exit_race(e):
            e["what"] += " [stock apache2 -X exit race, not mod_bbstatus]"
            notes.append(e)
        elif e["kind"] in MEMORY_ERRORS:
            problems.append(e)
        elif e["kind"].startswith("Leak_"):
            (problems if e["module"] and e["kind"] == "Leak_DefinitelyLost"
             else notes).append(e)
        elif e["module"]:
            problems.append(e)
        else:
            notes.append(e)
    return problems, notes


# --- running ----------------------------------------------------------------

def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _tool(cmd, path, timeout):
    """Run cmd with its output into path; True when it exited with 0."""
    if not shutil.which(cmd[0]):
        return False
    with open(path, "w") as f:
        try:
            return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL,
                                  timeout=timeout).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def _stop(proc, timeout, on_hang=None, finishing=None):
    """SIGTERM, wait up to timeout (twice that while ``finishing()`` says
    valgrind is writing its final report); then on_hang(pid) and SIGKILL
    to the process group.  -> (exit status, stopped by SIGTERM)."""
    if proc.poll() is not None:
        return proc.returncode, False
    proc.send_signal(signal.SIGTERM)
    end = time.monotonic() + timeout
    extended = False
    while True:
        try:
            return proc.wait(max(0.1, min(1.0, end - time.monotonic()))), True
        except subprocess.TimeoutExpired:
            pass
        if time.monotonic() >= end:
            if not extended and finishing and finishing():
                extended = True
                end += timeout
                continue
            break
    if on_hang:
        on_hang(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return proc.wait(30), False


def _finish(args, out, work, proc, nodes, h, valgrind, log_path, problems,
            info):
    """Stop httpd (SIGTERM) and the nodes, copy httpd's logs to out and
    remove the temporary files; every step even when one before failed."""
    try:
        if proc is not None:
            t = time.monotonic()

            def finishing():
                try:
                    with open(log_path, errors="replace") as f:
                        return "HEAP SUMMARY" in f.read()
                except OSError:
                    return False

            def on_hang(pid):
                if not valgrind:     # under valgrind gdb sees valgrind
                    info["threads_on_hang"] = _tool(
                        ["gdb", "-p", str(pid), "-batch", "-ex",
                         "thread apply all bt 30"],
                        os.path.join(out, "threads-on-hang.txt"), 120)
            rc, clean = _stop(proc, args.stop_timeout, on_hang, finishing)
            info["exit_status"] = rc
            info["stop_seconds"] = round(time.monotonic() - t, 1)
            info["stopped_by_sigterm"] = clean
            if not clean:
                problems.append(
                    f"apache2 did not stop within {args.stop_timeout:.0f} s "
                    f"of SIGTERM (killed)"
                    + (f"; its threads: {out}/threads-on-hang.txt"
                       if info.get("threads_on_hang") else
                       "; --no-valgrind shows where such a stop hangs"
                       if valgrind else ""))
    finally:
        try:
            if nodes is not None:
                nodes.stop()
            if h is not None:
                crash = [line for line in h.error_log().splitlines()
                         if "Segmentation fault" in line
                         or "AH03257" in line]
                if crash:
                    problems.append(f"error_log: {crash[:3]}")
                for name in ("error_log", "access_log"):
                    src = os.path.join(h.logs_dir, name)
                    if os.path.exists(src):
                        shutil.copy(src, os.path.join(out, name))
        finally:
            if args.keep:
                print(f"valgrind_run: files kept in {work} and "
                      f"{h.root if h else ''}")
            else:
                if h is not None and h.root != h.link:
                    shutil.rmtree(h.root, ignore_errors=True)
                shutil.rmtree(work, ignore_errors=True)


def run(args):
    valgrind = None if args.no_valgrind else shutil.which(args.valgrind)
    if not valgrind and not args.no_valgrind:
        print("valgrind_run: valgrind is not installed "
              "(apt-get install valgrind)", file=sys.stderr)
        return 2
    module = os.environ.get("BBS_MODULE") or os.path.join(
        REPO, ".libs", "mod_bbstatus.so")
    if not os.path.isfile(module):
        print(f"valgrind_run: {module} is not built (run make)",
              file=sys.stderr)
        return 2
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    for name in ("valgrind.xml", "valgrind.log", "summary.json",
                 "threads-on-hang.txt", "error_log", "access_log",
                 "apache2.out"):
        if os.path.exists(os.path.join(out, name)):
            os.unlink(os.path.join(out, name))
    xml_path = os.path.join(out, "valgrind.xml")
    log_path = os.path.join(out, "valgrind.log")

    work = tempfile.mkdtemp(prefix="bbs-valgrind-")
    nodes = proc = h = None
    problems = []
    info = {"module": module}
    t_start = time.monotonic()
    try:
        nodes = SimNodes.start(nodes=[(n,) for n in ALL_NODES], tmpdir=work)
        for m in HOSTILE:
            nodes.set(m, mode=m)
        members = "".join(
            f"    BalancerMember {member_url(nodes.port(n))} "
            f"hcmethod=BBSTATUS hcinterval=1 hcpasses=1 hcfails=1\n"
            for n in ALL_NODES)
        body = BODY.format(members=members,
                           deep=member_url(nodes.port("deep")),
                           flip3=member_url(nodes.port("flip3")))
        h = Httpd(os.path.join(work, "httpd"), name="valgrind",
                  module_loglevel="debug", server_limit=1, start_servers=1,
                  threads_per_child=8)
        h.write_conf(body)
        cmd = valgrind_command(valgrind, xml_path, log_path, h)
        info["command"] = " ".join(cmd)
        print("valgrind_run: " + info["command"], flush=True)
        with open(os.path.join(out, "apache2.out"), "wb") as o:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=o,
                                    stderr=subprocess.STDOUT,
                                    env=_base_env(h.env),
                                    start_new_session=True)

        def up():
            if proc.poll() is not None:
                raise RuntimeError(f"apache2 exited with {proc.returncode} "
                                   f"during start-up")
            return _port_open(h.port)
        wait_until(up, args.start_timeout, interval=0.2,
                   what="apache2 -X to listen")
        t_up = time.monotonic()
        info["startup_seconds"] = round(t_up - t_start, 1)

        clog = CheckLog(h.error_log_path)
        urls = [member_url(nodes.port(n)) for n in ALL_NODES]
        wait_until(lambda: clog.poll() >= 0 and all(
            clog.count[u] >= 1 for u in urls), 60, interval=0.5,
            what="a first check of every member")

        rng = random.Random(args.seed)
        chaos = 0
        answers = {}
        end = time.monotonic() + args.seconds
        next_chaos = time.monotonic()
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise RuntimeError(f"apache2 exited with {proc.returncode} "
                                   f"during the run")
            nodes.set(rng.choice(FLIPPERS), state=rng.choice(FLIP_STATES))
            if time.monotonic() >= next_chaos:
                nodes.set(CHAOS, mode=CHAOS_MODES[chaos % len(CHAOS_MODES)])
                chaos += 1
                next_chaos = time.monotonic() + 2.5
            path = rng.choice(REQUESTS)
            try:
                status = h.get(path, timeout=20)[0]
            except OSError as e:
                status = type(e).__name__
            key = f"{path} {status}"
            answers[key] = answers.get(key, 0) + 1
            time.sleep(0.3)
        clog.poll()
        info["run_seconds"] = round(time.monotonic() - t_up, 1)
        info["checks"] = clog.total
        info["checks_per_member"] = {
            n: clog.count[member_url(nodes.port(n))] for n in ALL_NODES}
        info["verdicts"] = dict(clog.verdicts)
        info["requests"] = answers
        info["chaos_modes"] = min(chaos, len(CHAOS_MODES))
        few = [n for n, c in info["checks_per_member"].items() if c < 3]
        if few:
            problems.append(f"members checked fewer than 3 times: {few}")
    except Exception as e:  # noqa: BLE001 - reported, then cleaned up
        problems.append(f"run failed: {type(e).__name__}: {e}")
    finally:
        _finish(args, out, work, proc, nodes, h, valgrind, log_path,
                problems, info)

    errors = []
    if proc is not None and valgrind:
        try:
            errors, complete = parse_report(xml_path)
            info["report_complete"] = complete
        except ValueError as e:
            problems.append(str(e))
    bad, notes = judge(errors)
    rc = info.get("exit_status")
    if info.get("stopped_by_sigterm") and isinstance(rc, int) and rc < 0 \
            and (bad or not any(stock_exit_race(e) for e in errors)):
        problems.append(f"apache2 ended with signal {-rc} after SIGTERM")
    info["total_seconds"] = round(time.monotonic() - t_start, 1)
    summary = {
        "passed": not problems and not bad,
        "problems": problems,
        "errors": bad,
        "other_reports": [{k: e[k] for k in ("kind", "what", "frames")}
                          for e in notes],
        "kinds": _kinds(errors),
        **info,
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    _print_summary(summary, out)
    return 0 if summary["passed"] else 1


def _kinds(errors):
    kinds = {}
    for e in errors:
        key = e["kind"] + (" (mod_bbstatus)" if e["module"] else "")
        kinds[key] = kinds.get(key, 0) + 1
    return kinds


def _print_summary(s, out):
    p = print
    p(f"valgrind_run: {s.get('checks', 0)} checks in "
      f"{s.get('run_seconds', '?')} s (start-up {s.get('startup_seconds')} "
      f"s, stop {s.get('stop_seconds')} s, exit status "
      f"{s.get('exit_status')}); verdicts {s.get('verdicts')}")
    p(f"valgrind_run: checks per member {s.get('checks_per_member')}")
    p(f"valgrind_run: valgrind reports by kind: {s['kinds'] or 'none'}"
      + ("" if s.get("report_complete", True) else
         " (report cut short: the process was killed)"))
    for e in s["errors"]:
        p(f"valgrind_run: FAIL {e['kind']}: {e['what']}")
        for fr in e["frames"]:
            p(f"    {fr}")
    for msg in s["problems"]:
        p(f"valgrind_run: FAIL {msg}")
    p(f"valgrind_run: {'passed' if s['passed'] else 'FAILED'} "
      f"(report in {out})")


def _exit_on_sigterm():
    """SIGTERM (e.g. from timeout or make) unwinds like Ctrl-C, so httpd
    and the simulator are still stopped."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0,
                    help="how long the members are checked")
    ap.add_argument("--out", default=os.path.join(REPO, "build", "valgrind"))
    ap.add_argument("--valgrind", default="valgrind")
    ap.add_argument("--start-timeout", type=float, default=120.0)
    ap.add_argument("--stop-timeout", type=float, default=60.0,
                    help="seconds httpd has to stop after SIGTERM (doubled "
                         "while valgrind writes its leak report)")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--no-valgrind", action="store_true",
                    help="the same run without valgrind (to try the run)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the ServerRoot and the simulator's files")
    args = ap.parse_args(argv)
    _exit_on_sigterm()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
