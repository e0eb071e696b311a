"""The proxies Atlassian administrators pick instead of httpd: HAProxy and
nginx from Debian, each run as a foreground process of ours on 127.0.0.1
with its configuration, pid and log files in a directory of its own,
stopped by pid.  Their system services are never used."""

import os
import shutil
import signal
import socket
import subprocess
import time

from .common import EXPR_STATES
from httpd import free_port

# The same rule as the ProxyHCExpr configuration: which /status states
# keep a server in rotation.
HAPROXY_RSTRING = '"state" *: *"(' + EXPR_STATES + ')"'


def haproxy_conf(ports, port, retry, interval=1, routes=None,
                 slowstart=None):
    """HAProxy 2.6 as an expert would set it up for Bitbucket/Jira nodes:
    an HTTP check of /status matched on the state, fast re-checks while a
    server changes, and any 5xx a user gets marking the server down until
    its check passes again (observe layer7).  With ``retry``, layer-7
    retries on another server too (idempotent methods only).  With
    ``routes`` (one per port), cookie persistence on ROUTEID: a client
    whose cookie names a server's value (httpd's ".route") goes to that
    server while it is up, others get a cookie inserted, and ``option
    redispatch`` sends a pinned client elsewhere when its server is down
    or a connection to it fails.  With ``slowstart`` (seconds), a server
    that comes back up takes a weight that grows to full over that time."""
    lines = [
        "global",
        "    maxconn 4096",
        "    log stderr format short local0 notice",
        "defaults",
        "    mode http",
        "    log global",
        "    option httplog",
        "    option dontlog-normal",
        "    timeout connect 1s",
        "    timeout client 30s",
        "    timeout server 30s",
        "    timeout check 1s",
        "frontend fe",
        f"    bind 127.0.0.1:{port}",
        "    default_backend bb",
        "backend bb",
        "    balance roundrobin",
        "    option httpchk",
        "    http-check send meth GET uri /status ver HTTP/1.1 "
        "hdr Host localhost",
        f"    http-check expect rstring '{HAPROXY_RSTRING}'",
    ]
    if routes:
        lines.append("    cookie ROUTEID insert indirect nocache")
        if not retry:
            lines.append("    option redispatch")
    if retry:
        lines += [
            "    retry-on 503 conn-failure empty-response response-timeout",
            "    retries 2",
            "    option redispatch 1",
            "    http-request disable-l7-retry if !METH_GET !METH_HEAD "
            "!METH_OPTIONS",
        ]
    lines.append(f"    default-server inter {interval}s fastinter 100ms "
                 "rise 1 fall 1 observe layer7 error-limit 1 "
                 "on-error mark-down"
                 + (f" slowstart {slowstart}s" if slowstart else ""))
    for i, p in enumerate(ports):
        lines.append(f"    server m{i + 1} 127.0.0.1:{p} check"
                     + (f" cookie .{routes[i]}" if routes else ""))
    return "\n".join(lines) + "\n"


def nginx_conf(ports, port, root, routes=None):
    """nginx 1.22 (no active check in the free version): a server that
    fails once (connection error, timeout, 502/503/504) is left alone for
    1 s, and the request goes to the next server.  Free nginx has no sticky
    cookie; with ``routes`` (one per port) a map on $cookie_ROUTEID sends
    a client whose cookie names a route (httpd's ".route") to an upstream
    of its own in which that node is the only primary server and the
    others are backups; clients without such a cookie go to ``bb``.
    nginx never sets the cookie."""
    srv = " max_fails=1 fail_timeout=1s"
    ups = "\n".join(f"        server 127.0.0.1:{p}{srv};" for p in ports)
    pinned = ""
    target = "http://bb"
    if routes:
        target = "http://$bb_upstream"
        pinned = "    map $cookie_ROUTEID $bb_upstream {\n        default bb;\n"
        pinned += "".join(f"        .{r} bb_{r};\n" for r in routes)
        pinned += "    }\n"
        for i, r in enumerate(routes):
            pinned += f"    upstream bb_{r} {{\n"
            for j, p in enumerate(ports):
                pinned += (f"        server 127.0.0.1:{p}{srv}"
                           + ("" if i == j else " backup") + ";\n")
            pinned += "        keepalive 32;\n    }\n"
    return f"""daemon off;
master_process on;
worker_processes 2;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{
    worker_connections 2048;
}}
http {{
    access_log off;
    client_body_temp_path {root}/tmp/body;
    proxy_temp_path {root}/tmp/proxy;
    fastcgi_temp_path {root}/tmp/fastcgi;
    uwsgi_temp_path {root}/tmp/uwsgi;
    scgi_temp_path {root}/tmp/scgi;
    upstream bb {{
{ups}
        keepalive 32;
    }}
{pinned}    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {target};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_connect_timeout 1s;
            proxy_next_upstream error timeout http_502 http_503 http_504;
        }}
    }}
}}
"""


class Peer:
    """One HAProxy or nginx process: start(), stop() by pid, the log."""

    def __init__(self, kind, root, name):
        self.kind = kind
        self.name = name
        self.root = root
        self.port = None
        self.proc = None
        self.pid = None
        self.conf = None
        os.makedirs(os.path.join(root, "tmp"), exist_ok=True)
        self.log_path = os.path.join(root, "error.log")

    def __repr__(self):
        return f"<Peer {self.kind} {self.name} pid={self.pid}>"

    def start(self, ports, retry=False, interval=1, deadline=15.0,
              routes=None, slowstart=None):
        for _ in range(3):       # a port taken meanwhile: another one
            self.port = free_port()
            if self.kind == "haproxy":
                text = haproxy_conf(ports, self.port, retry, interval,
                                    routes, slowstart)
                self.conf = os.path.join(self.root, "haproxy.cfg")
                cmd = ["haproxy", "-db", "-f", self.conf,
                       "-p", os.path.join(self.root, "haproxy.pid")]
            else:
                text = nginx_conf(ports, self.port, self.root, routes)
                self.conf = os.path.join(self.root, "nginx.conf")
                cmd = ["nginx", "-p", self.root + "/", "-c", self.conf,
                       "-e", self.log_path]
            with open(self.conf, "w") as f:
                f.write(text)
            check = cmd + (["-c"] if self.kind == "haproxy" else ["-t"])
            p = subprocess.run(check, capture_output=True, text=True,
                               timeout=30)
            if p.returncode != 0:
                raise RuntimeError(f"{self.kind} -c/-t: "
                                   f"{(p.stdout + p.stderr).strip()}")
            log = open(self.log_path, "a")
            try:
                self.proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True)
            finally:
                log.close()
            self.pid = self.proc.pid
            if self._wait_listening(deadline):
                return self
            self.stop()
        raise RuntimeError(f"{self.kind} did not start; see {self.log_path}")

    def _wait_listening(self, deadline):
        end = time.time() + deadline
        while time.time() < end:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=0.5):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self):
        """SIGTERM to the process we started (nginx's master takes its
        workers along, HAProxy is one process), SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.proc.wait(5)
        except ProcessLookupError:
            pass

    def unexpected_log_lines(self, allow=()):
        """Lines that say something went wrong with the proxy itself (not
        the servers going down and up, which is what the scenarios do)."""
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        bad = ("[ALERT]", "[emerg]", "[alert]", "[crit]")
        return [ln for ln in lines if any(b in ln for b in bad)
                and "no server available" not in ln
                and "has no server available" not in ln]


def available(kind):
    return shutil.which(kind) is not None
