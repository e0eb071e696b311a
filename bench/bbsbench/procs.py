"""Processes of a run (simulated nodes, httpd instances) and the httpd
configuration of each compared setup."""

import hashlib
import os
import shutil
import sys
import time

# .common puts the test harness on sys.path
from .common import (CONFIGS, EXPECTED_LOG, FULL, HC_FAILS, HC_INTERVAL,
                     HC_PASSES, QUICK, log)
from .peers import Peer, haproxy_conf, nginx_conf
from httpd import Httpd  # noqa: E402
from simclient import SimNodes  # noqa: E402

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

    def peer(self, kind, name):
        self._n += 1
        root = os.path.join(self.workdir, "peers", f"{self._n:02d}-{name}")
        shutil.rmtree(root, ignore_errors=True)
        p = Peer(kind, root, name)
        self.procs.append(p)
        return p

    def stop(self, proc):
        try:
            proc.stop()
        except Exception as e:
            log(f"stopping {proc!r}: {e!r}")
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self, *procs):
        """Stops each of procs that was started (not None), in order, each
        whatever happened to the one before: a run's finally block."""
        for proc in procs:
            if proc is not None:
                self.stop(proc)

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


def balancer_conf(cfg, name, ports, interval=None, extra_proxy="",
                  routes=None):
    c = CONFIGS[cfg]
    iv = HC_INTERVAL if interval is None else interval
    lines = [f"<Proxy balancer://{name}>"]
    for i, p in enumerate(ports):
        lines.append(f"    BalancerMember http://127.0.0.1:{p}"
                     + (f" route={routes[i]}" if routes else "")
                     + f" {c['method']} hcinterval={iv} hcpasses={HC_PASSES} "
                     f"hcfails={HC_FAILS}")
    if routes:
        extra_proxy = "ProxySet stickysession=ROUTEID\n" + extra_proxy
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


# The rolling scenario's shape, as conf.d/bitbucket-balancer.conf.example
# has it: the balancer, its diagnostics and ProxyPass inside a name-based
# <VirtualHost> (plain HTTP on the bench's loopback port), a route= per
# member, stickysession=ROUTEID, and the Set-Cookie line that pins a user
# to the member that served them.
STICKY_HEADER = ('Header add Set-Cookie "ROUTEID=.%{BALANCER_WORKER_ROUTE}e; '
                 'path=/" env=BALANCER_ROUTE_CHANGED')


def vhost_conf(cfg, ports, routes, interval=None):
    """The body of one configuration in the deployed shape (see above);
    @PORT@ is the listen port (tests/integration/httpd.py substitutes
    it)."""
    c = CONFIGS[cfg]
    inner = (c["head"] + "\n" if c["head"] else "") + STICKY_HEADER + "\n"
    inner += balancer_conf(cfg, "bb", ports, interval, routes=routes)
    inner += DIAG + (DIAG_MODULE if c["module"] else "")
    inner += ("ProxyPass / balancer://bb/ nocanon\n"
              "ProxyPassReverse / balancer://bb/\n"
              "ProxyPreserveHost on\n"
              "AllowEncodedSlashes NoDecode\n")
    return ("<VirtualHost *:@PORT@>\n"
            "    ServerName bitbucket.bench.test\n"
            + "".join("    " + ln + "\n" if ln else "\n"
                      for ln in inner.splitlines())
            + "</VirtualHost>\n")


def start_proxy(bench, cfg, ports, name, interval=None, extra_proxy="",
                server_extra="", loglevel="info", routes=None, **kw):
    """One proxy of configuration ``cfg`` in front of ``ports``; with
    ``routes`` (one per port) in the deployed shape: for httpd the
    balancer in a <VirtualHost> with sticky sessions (vhost_conf), for
    HAProxy and nginx their cookie pinning (bbsbench/peers.py)."""
    c = CONFIGS[cfg]
    if c.get("peer"):
        p = bench.peer(c["peer"], name)
        p.start(ports, retry=c["retry"],
                interval=HC_INTERVAL if interval is None else interval,
                routes=routes, slowstart=c.get("slowstart"))
        return p
    h = bench.httpd(name, CONFIGS[cfg]["module"], loglevel=loglevel, **kw)
    if routes:
        h.start(vhost_conf(cfg, ports, routes, interval))
    else:
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


ROUTES = ("n1", "n2", "n3")      # the rolling scenario's nodes and routes


def config_text_sample(cfg, interval=None, n=3, shape="vhost"):
    """The configuration as documented (ports as 7990, 7991, ...):
    ``shape`` "vhost" as the rolling scenario runs it, "main" as the
    other scenarios do."""
    ports = [7990 + i for i in range(n)]
    routes = ROUTES[:n] if shape == "vhost" else None
    c = CONFIGS[cfg]
    if c.get("peer") == "haproxy":
        return haproxy_conf(ports, 8080, c["retry"], interval or HC_INTERVAL,
                            routes, c.get("slowstart")).replace(
                                "127.0.0.1:799", "node:799")
    if c.get("peer") == "nginx":
        return nginx_conf(ports, 8080, "/run/bench-nginx", routes).replace(
            "127.0.0.1:799", "node:799")
    body = (vhost_conf(cfg, ports, routes, interval).replace("@PORT@", "80")
            if routes else proxy_conf(cfg, ports, interval))
    return body.replace("127.0.0.1:799", "node:799")


