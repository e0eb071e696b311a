#!/usr/bin/env python3
"""make demo: mod_bbstatus at work in front of three simulated Bitbucket nodes.

Starts the simulated nodes and a private httpd (its own ServerRoot
build/demo, loopback only; as root, a symlink to a directory httpd's
children can reach, see external_root), walks one node through a graceful
restart and one through maintenance, and prints after each step what the
module decided.
httpd and the nodes keep running afterwards so the pages can be opened;
`make demo-stop` (this script with --stop) stops both by their pids.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "build", "demo")
MODULE = os.path.join(REPO, ".libs", "mod_bbstatus.so")
SIMNODE = os.path.join(REPO, "tests", "nodes", "simnode.py")
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
from httpd import HttpdError, reachable_parent  # noqa: E402
MODULES = "/usr/lib/apache2/modules"
NODES = ("node1", "node2", "node3")

CONF = """\
ServerRoot "{root}"
Listen 127.0.0.1:{port}
ServerName 127.0.0.1
PidFile "{root}/run/httpd.pid"
DefaultRuntimeDir "{root}/run"
Mutex file:{root}/run default
ErrorLog "{root}/logs/error_log"
LogLevel warn bbstatus:notice
LogFormat "%h %>s \\"%r\\" member=%{{BALANCER_WORKER_NAME}}e" demo
CustomLog "{root}/logs/access_log" demo
{user}
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule authz_host_module {mods}/mod_authz_host.so
LoadModule status_module {mods}/mod_status.so
LoadModule proxy_module {mods}/mod_proxy.so
LoadModule proxy_http_module {mods}/mod_proxy_http.so
LoadModule proxy_balancer_module {mods}/mod_proxy_balancer.so
LoadModule proxy_hcheck_module {mods}/mod_proxy_hcheck.so
LoadModule slotmem_shm_module {mods}/mod_slotmem_shm.so
LoadModule lbmethod_byrequests_module {mods}/mod_lbmethod_byrequests.so
LoadModule bbstatus_module {module}
StartServers 1
ServerLimit 2
ThreadsPerChild 16
MaxRequestWorkers 32
MinSpareThreads 8
MaxSpareThreads 32
DocumentRoot "{root}/htdocs"
<Directory />
    AllowOverride None
    Require all denied
</Directory>

<Proxy balancer://bitbucket>
{members}
    BBStatusFastInterval 250ms
</Proxy>
ProxyPass /bbstatus !
ProxyPass /balancer-manager !
ProxyPass /server-status !
ProxyPass / balancer://bitbucket/

<Location /bbstatus>
    SetHandler bbstatus
    Require local
</Location>
<Location /balancer-manager>
    SetHandler balancer-manager
    Require local
</Location>
<Location /server-status>
    SetHandler server-status
    Require local
</Location>
"""


def say(text=""):
    print(text, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_pid(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid, what, deadline=10.0):
    if not pid or not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + deadline
    while time.monotonic() < end and alive(pid):
        time.sleep(0.05)
    if alive(pid):
        os.kill(pid, signal.SIGKILL)
    say("stopped %s (pid %d)" % (what, pid))


def stop():
    stop_pid(read_pid(os.path.join(DEMO, "run", "httpd.pid")), "httpd")
    stop_pid(read_pid(os.path.join(DEMO, "nodes.pid")), "simulated nodes")
    for name in ("nodes.pid", "nodes.json", "demo.json"):
        try:
            os.unlink(os.path.join(DEMO, name))
        except OSError:
            pass


def external_root():
    """As root, httpd's children run as nobody and need search permission
    on every directory above their DocumentRoot; a checkout in root's home
    (mode 0700) has none.  So build/demo is then a symlink to a fresh 0755
    directory below <tempdir>/bbs-demo-<uid>/, and httpd is given the real
    path.  Returns the real path of the demo's ServerRoot."""
    if os.geteuid() != 0:
        os.makedirs(DEMO, exist_ok=True)
        return os.path.realpath(DEMO)
    try:
        parent = reachable_parent("bbs-demo")
    except HttpdError as e:
        raise SystemExit("demo: %s" % e)
    prune(parent)
    if os.path.islink(DEMO):
        real = os.path.realpath(DEMO)
        if os.path.dirname(real) == os.path.realpath(parent) \
                and os.path.isdir(real):
            return real
        os.unlink(DEMO)
    elif os.path.isdir(DEMO):
        shutil.rmtree(DEMO)     # a demo root from before this layout
    os.makedirs(os.path.dirname(DEMO), exist_ok=True)
    real = tempfile.mkdtemp(prefix="demo-", dir=parent)
    os.chmod(real, 0o755)
    with open(os.path.join(real, ".link"), "w") as f:
        f.write(DEMO)
    os.symlink(real, DEMO)
    return real


def prune(parent):
    """Removes demo roots no checkout links to any more (the checkout was
    removed or moved) and whose httpd is not running."""
    for name in os.listdir(parent):
        real = os.path.join(parent, name)
        try:
            with open(os.path.join(real, ".link")) as f:
                link = f.read()
        except OSError:
            continue
        pid = read_pid(os.path.join(real, "run", "httpd.pid"))
        if os.path.realpath(link) != real and not (pid and alive(pid)):
            shutil.rmtree(real, ignore_errors=True)


# what in the error log says why httpd could not do its job
CAUSE_RE = re.compile(r"\[[\w.-]*:?(?:warn|error|crit|alert|emerg)\]|"
                      r"exit signal|Segmentation fault")


# the parts of a log line that differ between repeats of one message
VARYING_RE = re.compile(r"^\[[^\]]*\] |\[pid [^\]]*\] |\[client [^\]]*\] ")


def causes(limit=10):
    """The error log's distinct messages at warn level or worse, each once
    with how often it came, the last few."""
    seen = {}
    try:
        with open(os.path.join(DEMO, "logs", "error_log"),
                  errors="replace") as f:
            for line in f:
                if CAUSE_RE.search(line):
                    key = VARYING_RE.sub("", line.rstrip())
                    n, first = seen.pop(key, (0, line.rstrip()))
                    seen[key] = (n + 1, first)
    except OSError as e:
        return "(no error log: %s)" % e
    if not seen:
        return "(nothing at warn level or worse in %s)" % os.path.join(
            DEMO, "logs", "error_log")
    return "\n".join("%s%s" % (first, " (%d times)" % n if n > 1 else "")
                     for n, first in list(seen.values())[-limit:])


def wait_for(fn, deadline, what, demo=None):
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    seen = ""
    if demo is not None and demo.last_status not in (None, 200):
        seen = "; GET /bbstatus answered %s" % demo.last_status
    raise SystemExit("demo: gave up waiting for %s (last: %r%s); the error "
                     "log says:\n%s" % (what, last, seen, causes()))


class Demo:
    def __init__(self, port):
        self.port = port
        self.base = "http://127.0.0.1:%d" % port
        self.last_status = None     # of GET /bbstatus, for wait_for

    def get(self, path, headers=None):
        req = urllib.request.Request(self.base + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.control_port, path), data=data,
            method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read() or b"null")

    def set_state(self, node, state):
        self.control("POST", "/nodes/" + node, {"state": state})

    def members(self):
        try:
            status, _, body = self.get("/bbstatus?format=json")
        except OSError as e:
            status = body = repr(e)
        self.last_status = status
        if status != 200:
            return {}
        doc = json.loads(body)
        out = {}
        for b in doc["balancers"]:
            for m in b["members"]:
                out[self.node_of[m["name"]]] = m
        return out

    def traffic(self, n=30):
        served = {}
        for _ in range(n):
            status, headers, _ = self.get("/projects")
            who = headers.get("X-Node", "proxy") if status < 500 else (
                "%s:%d" % (headers.get("X-Node", "proxy"), status))
            served[who] = served.get(who, 0) + 1
        return ", ".join("%s %d" % kv for kv in sorted(served.items()))

    def table(self, title):
        say()
        say("== " + title)
        say("%-6s %-9s %-11s %-4s %-8s %s" % (
            "node", "decision", "state", "HTTP", "rotation", "reason"))
        for node, m in sorted(self.members().items()):
            say("%-6s %-9s %-11s %-4s %-8s %s" % (
                node, m["decision"], m["state"] or "-",
                m["http_status"] or "-",
                "in" if m["in_rotation"] else "out", m["reason"]))
        say("   30 requests through the proxy went to: " + self.traffic())

    def wait(self, fn, deadline, what):
        return wait_for(fn, deadline, what, self)

    def decision(self, node):
        return self.members().get(node, {}).get("decision")


def start(port):
    stop()  # a previous demo left running
    root = external_root()
    for sub in ("logs", "run", "htdocs", "conf"):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        os.chmod(os.path.join(root, sub), 0o755)
    for log in ("error_log", "access_log"):
        try:
            os.unlink(os.path.join(DEMO, "logs", log))
        except OSError:
            pass
    if not os.path.exists(MODULE):
        raise SystemExit("demo: %s is missing; run make first" % MODULE)

    ports_file = os.path.join(DEMO, "nodes.json")
    args = [sys.executable, SIMNODE, "--ports-file", ports_file]
    for n in NODES:
        args += ["--node", "%s=0:bitbucket:RUNNING" % n]
    with open(os.path.join(DEMO, "logs", "nodes.log"), "w") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL,
                                start_new_session=True)
    with open(os.path.join(DEMO, "nodes.pid"), "w") as f:
        f.write(str(proc.pid))
    ports = wait_for(lambda: os.path.exists(ports_file) and json.load(
        open(ports_file)), 10, "the simulated nodes")

    user = ""
    if os.geteuid() == 0:
        user = "User nobody\nGroup nogroup"
    members = "\n".join(
        "    BalancerMember http://127.0.0.1:%d route=%s hcmethod=BBSTATUS "
        "hcinterval=1 hcpasses=2 hcfails=2" % (ports["nodes"][n], n)
        for n in NODES)
    conf = os.path.join(DEMO, "conf", "httpd.conf")
    with open(conf, "w") as f:
        f.write(CONF.format(root=root, port=port, user=user, mods=MODULES,
                            module=MODULE, members=members))
    r = subprocess.run(["apache2", "-d", root, "-f", conf, "-k", "start"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("demo: httpd did not start:\n" + r.stdout + r.stderr
                         + "\nthe error log says:\n" + causes())

    d = Demo(port)
    d.control_port = ports["control"]
    d.node_of = {"http://127.0.0.1:%d" % p: n
                 for n, p in ports["nodes"].items()}
    with open(os.path.join(DEMO, "demo.json"), "w") as f:
        json.dump({"port": port, "control": d.control_port}, f)
    return d


def walk(d):
    d.wait(lambda: all(d.decision(n) == "route" for n in NODES), 15,
             "the first checks")
    d.table("three nodes RUNNING: all in rotation")

    say("\n>>> node2 begins a graceful restart: it says STOPPING")
    d.set_state("node2", "STOPPING")
    d.wait(lambda: d.decision("node2") == "block", 5, "node2 to leave")
    d.table("node2 STOPPING: out at once, it said it is going away")

    say("\n>>> node2's Tomcat is down: connections are refused")
    d.set_state("node2", "STOPPED")
    d.wait(lambda: (d.members()["node2"]["reason"] or "").startswith(
        "connection refused"), 5, "node2 to refuse")
    d.table("node2 stopped: still out, reason: connection refused")

    say("\n>>> node2 starts again: STARTING")
    d.set_state("node2", "STARTING")
    d.wait(lambda: d.decision("node2") == "standby", 8, "node2 standby")
    d.table("node2 STARTING: standby, used only if no RUNNING node is left")

    say("\n>>> node2 is RUNNING again")
    d.set_state("node2", "RUNNING")
    d.wait(lambda: d.decision("node2") == "route", 8, "node2 to return")
    d.table("node2 RUNNING: back in rotation")

    say("\n>>> a backup puts every node in MAINTENANCE")
    for n in NODES:
        d.set_state(n, "MAINTENANCE")
    d.wait(lambda: all(d.decision(n) == "standby" for n in NODES), 8,
             "maintenance")
    answered = sum(1 for _ in range(20) if d.get(
        "/mvc/maintenance", {"X-Atlassian-Maintenance-Token": "demo"})[0]
        == 200)
    d.table("all nodes in MAINTENANCE: kept in rotation (standby)")
    say("   backup client polls of /mvc/maintenance answered: %d/20"
        % answered)

    say("\n>>> the backup is done: node3 stays in MAINTENANCE a bit longer")
    for n in ("node1", "node2"):
        d.set_state(n, "RUNNING")
    d.wait(lambda: d.decision("node1") == "route"
             and d.decision("node2") == "route", 8, "the end of the backup")
    d.table("node3 in MAINTENANCE: standby while node1 and node2 run")

    d.set_state("node3", "RUNNING")
    say()
    say("The demo keeps running. Open:")
    say("  %s/bbstatus                    why each member is in or out"
        % d.base)
    say("  %s/bbstatus?format=json" % d.base)
    say("  %s/bbstatus?format=prometheus" % d.base)
    say("  %s/balancer-manager            hcmethod BBSTATUS per member"
        % d.base)
    say("  %s/server-status" % d.base)
    say("  log: %s" % os.path.join(DEMO, "logs", "error_log"))
    say("Flip a node yourself:")
    say("  curl -X POST -d '{\"state\":\"STOPPING\"}' "
        "http://127.0.0.1:%d/nodes/node1" % d.control_port)
    say("Stop everything: make demo-stop")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--stop", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    if a.stop:
        stop()
        return
    d = start(a.port or free_port())
    try:
        walk(d)
    except BaseException:
        stop()
        raise


if __name__ == "__main__":
    main()
