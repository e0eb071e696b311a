"""Client of the simulated Atlassian nodes (simnode.py).

``SimNodes`` starts the simulator as a subprocess, waits until it listens
and drives its JSON control API; tests and benchmarks import it from here.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid


class SimNodesError(RuntimeError):
    pass


class SimNodes:
    """Runs simnode.py as a subprocess and drives its control API.

        with SimNodes.start(nodes=[("a", "bitbucket", "RUNNING"),
                                   ("b", "jira", "STARTING")],
                            tmpdir=tmp_path) as sim:
            port = sim.port("a")
            sim.set("a", mode="hang", scope="all")

    A node is (name, flavor, state) or (name, flavor, state, port); name,
    flavor and state may be left off from the right (defaults bitbucket,
    RUNNING, port 0 = free port).  ``unix_nodes`` are (name, path, flavor,
    state) nodes on unix sockets; ``sim.path(name)`` gives the path back.
    """

    SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "simnode.py")

    def __init__(self, proc: subprocess.Popen, host: str, ports: dict,
                 owned_dir: str | None):
        self.proc = proc
        self.host = host
        self.control_port = ports["control"]
        self._ports = dict(ports["nodes"])
        self._paths = dict(ports.get("unix", {}))
        self._owned_dir = owned_dir
        self._stopped = False

    @classmethod
    def start(cls, nodes=(), host: str = "127.0.0.1", tmpdir=None, *,
              many: int = 0, base_name: str = "n", timeout: float = 10.0,
              args=(), python: str | None = None, stdout=None,
              stderr=None, unix_nodes=()) -> "SimNodes":
        owned = None
        if tmpdir is None:
            tmpdir = owned = tempfile.mkdtemp(prefix="simnode-")
        # A unique name lets several simulators share one directory.
        ports_file = os.path.join(os.fspath(tmpdir),
                                  f"simnode-{uuid.uuid4().hex[:12]}.ports.json")
        cmd = [python or sys.executable, cls.SCRIPT, "--host", host,
               "--control-port", "0", "--ports-file", ports_file]
        for spec in nodes:
            cmd += ["--node", cls._node_arg(spec)]
        for name, path, *rest in unix_nodes:
            flavor, state = (tuple(rest) + ("bitbucket", "RUNNING"))[:2]
            cmd += ["--unix-node", f"{name}={path}:{flavor}:{state}"]
        if many:
            cmd += ["--many", str(many), "--base-name", base_name]
        cmd += list(args)
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=stderr)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    with open(ports_file) as f:
                        ports = json.load(f)
                    break
                except FileNotFoundError:
                    pass
                code = proc.poll()
                if code is not None:
                    raise SimNodesError(f"simnode exited with code {code} "
                                        "during start-up")
                if time.monotonic() > deadline:
                    raise SimNodesError(f"simnode did not listen within {timeout} s")
                time.sleep(0.02)
        except BaseException:
            cls._terminate(proc, 5.0)
            if owned:
                shutil.rmtree(owned, ignore_errors=True)
            raise
        return cls(proc, host, ports, owned)

    @staticmethod
    def _node_arg(spec) -> str:
        spec = (spec,) if isinstance(spec, str) else tuple(spec)
        if not 1 <= len(spec) <= 4:
            raise ValueError(f"bad node spec {spec!r}")
        name, flavor, state, port = spec + ("", "bitbucket", "RUNNING", 0)[len(spec):]
        return f"{name}={port}:{flavor}:{state}"

    # -- queries and changes -------------------------------------------------

    def port(self, name: str) -> int:
        return self._ports[name]

    def path(self, name: str) -> str:
        return self._paths[name]

    def names(self) -> list:
        return list(self._ports)

    def url(self, name: str, path: str = "/status") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port(name)}{path}"

    def nodes(self) -> dict:
        return self._call("GET", "/nodes")

    def node(self, name: str) -> dict:
        return self._call("GET", f"/nodes/{self._q(name)}")

    def set(self, name: str, **fields) -> dict:
        return self._call("POST", f"/nodes/{self._q(name)}", fields)

    def requests(self, name: str) -> list:
        return self._call("GET", f"/nodes/{self._q(name)}/requests")

    def script(self, name: str, steps) -> dict:
        return self._call("POST", f"/script/{self._q(name)}",
                          {"steps": [list(s) for s in steps]})

    def wait_script(self, name: str, timeout: float = 10.0) -> dict:
        """Poll until the node's script has finished; returns its record."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.node(name)
            if not record["script_running"]:
                return record
            if time.monotonic() > deadline:
                raise SimNodesError(f"script of {name} still running")
            time.sleep(0.02)

    def events(self) -> list:
        return self._call("GET", "/events")

    # -- lifetime ------------------------------------------------------------

    @property
    def returncode(self):
        return self.proc.returncode

    def stop(self, timeout: float = 5.0):
        """SIGTERM, wait up to timeout, then SIGKILL.  Safe to call twice."""
        if self._stopped:
            return self.proc.returncode
        self._stopped = True
        try:
            self._terminate(self.proc, timeout)
        finally:
            if self._owned_dir:
                shutil.rmtree(self._owned_dir, ignore_errors=True)
        return self.proc.returncode

    @staticmethod
    def _terminate(proc: subprocess.Popen, timeout: float) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait(timeout)

    def __enter__(self) -> "SimNodes":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- plumbing ------------------------------------------------------------

    @staticmethod
    def _q(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    def _call(self, method: str, path: str, payload=None, timeout: float = 10.0):
        conn = http.client.HTTPConnection(self.host, self.control_port,
                                          timeout=timeout)
        try:
            body = None if payload is None else json.dumps(payload).encode()
            headers = {"Content-Type": "application/json"} if body else {}
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        result = json.loads(data) if data else None
        if resp.status >= 300:
            raise SimNodesError(f"{method} {path}: HTTP {resp.status}: {result}")
        return result
