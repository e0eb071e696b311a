"""Drive a real apache2 (Debian build) instance for integration tests.

Every ``Httpd`` owns a private ServerRoot (``tmpdir``) with ``conf/``,
``logs/``, ``run/`` and ``htdocs/`` inside it, listens on a free port on
127.0.0.1 and is started/stopped with the stock ``apache2`` binary.
As root, children run as nobody/nogroup and the real ServerRoot is a 0755
directory below <tempdir>/bbs-httpd-0/ with ``tmpdir`` a symlink to it
(``Httpd.root`` is the real path; see ``_external_root``).

The configuration is a fixed base (modules, Listen, logs, MPM sizing, ...)
followed by a caller-given body.  In the body the placeholders ``@PORT@``
(our listen port) and ``@ROOT@`` (the ServerRoot) are substituted.

Only 127.0.0.1 is ever used.
"""

import grp
import http.client
import os
import pwd
import random
import re
import resource
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

APACHE2 = os.environ.get("BBS_APACHE2", "/usr/sbin/apache2")
MODULES_DIR = os.environ.get("BBS_APACHE_MODULES", "/usr/lib/apache2/modules")
MIME_TYPES = "/etc/mime.types"
# what /proc/PID/comm says of our server processes (at most 15 bytes):
# "apache2" for Debian's, "httpd" for an upstream build (make check-compat)
SERVER_COMM = os.path.basename(APACHE2)[:15]

# Stock modules loaded into every instance (after the MPM), in this order.
BASE_MODULES = (
    "authz_core",
    "authz_host",
    "mime",
    "status",
    "proxy",
    "proxy_http",
    "proxy_balancer",
    "proxy_hcheck",
    "slotmem_shm",
    "lbmethod_byrequests",
    "headers",
)

# Environment variables handed through to apache2 (sanitizers, preloads).
PASSTHROUGH_ENV = (
    "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "MSAN_OPTIONS",
    "TSAN_OPTIONS", "LD_LIBRARY_PATH", "LD_PRELOAD", "MALLOC_CHECK_",
    "MALLOC_PERTURB_", "TZ",
)

# "[date] [module:level] [pid ...] ..." (the default ErrorLogFormat)
LEVEL_RE = re.compile(
    r"^\[[^\]]*\] \[(?:[\w.-]+:)?(emerg|alert|crit|error|warn)\]", re.M)
# Flagged even at a lower level; can be allowed by a test.
SUSPICIOUS = ("Segmentation fault", "exit signal", "AddressSanitizer",
              "LeakSanitizer", "runtime error:")
# Flagged always; no allow pattern can hide these.
NEVER_ALLOWED = ("AH03257",)

READY_RE = r"resuming normal operations"

# the MPMs that tests parametrized over "mpm" run under (see conftest)
MPMS = ("event", "worker", "prefork")

# Where a test's body goes (tests parametrized over "shape", see
# conftest): "main", the main server as written; "vhost", inside a
# name-based <VirtualHost> on the listen address, as every deployment and
# the shipped conf.d examples put a balancer.  Directives that only the
# main server takes stay before the wrapper (Httpd.GLOBAL_DIRECTIVES).
SHAPES = ("main", "vhost")


class HttpdError(Exception):
    """apache2 could not be configured, started, restarted or stopped."""


class Headers(dict):
    """Response headers: keys are lower-cased, lookups are case-insensitive.
    Repeated headers are joined with ', '."""

    def __init__(self, items=()):
        super().__init__()
        for k, v in items:
            k = k.lower()
            if k in self:
                super().__setitem__(k, self[k] + ", " + v)
            else:
                super().__setitem__(k, v)

    def __getitem__(self, key):
        return super().__getitem__(key.lower())

    def __contains__(self, key):
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key, default=None):
        return super().get(key.lower(), default)


def wait_until(fn, deadline, interval=0.05, what="condition", ignore=()):
    """Call ``fn()`` every ``interval`` s until it returns something truthy
    (which is returned) or ``deadline`` seconds have passed, then raise
    AssertionError naming ``what`` and the last value.  Exceptions of the
    types in ``ignore`` count as a falsy result."""
    end = time.monotonic() + deadline
    last = None
    while True:
        try:
            last = fn()
        except ignore as e:  # noqa: PERF203
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= end:
            raise AssertionError(
                f"timed out after {deadline}s waiting for {what}; "
                f"last value: {last!r}")
        time.sleep(interval)


# Ports are handed out below the kernel's ephemeral range when there is
# room: a port from bind(0) is in that range, so until its user binds it,
# the source port of any outgoing connection, or another process's bind(0),
# may take it. And a port is never handed out twice by one process: two
# calls in a row could otherwise return the same one.
_PORT_FLOOR = 10000
_ports_given = set()
_ports_lock = threading.Lock()
_ports_rng = random.Random()


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _bind_port(port):
    """The port bound on 127.0.0.1 (port 0: the kernel's pick), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return None
        return s.getsockname()[1]


def free_port():
    """A port on 127.0.0.1 that was free a moment ago and that this process
    has not handed out before."""
    low = _ephemeral_low()
    with _ports_lock:
        for _ in range(500):
            if low - _PORT_FLOOR >= 1000:
                port = _bind_port(_ports_rng.randrange(_PORT_FLOOR, low))
            else:
                port = _bind_port(0)
            if port is not None and port not in _ports_given:
                _ports_given.add(port)
                return port
    raise RuntimeError("no free port on 127.0.0.1 in 500 tries")


_compiled_in = None


def compiled_in_modules():
    """Short names (e.g. 'watchdog') of modules compiled into apache2."""
    global _compiled_in
    if _compiled_in is None:
        out = subprocess.run([APACHE2, "-l"], capture_output=True, text=True,
                             env=_base_env(), timeout=30).stdout
        _compiled_in = frozenset(
            m.group(1) for m in re.finditer(r"^\s*mod_(\w+)\.c\s*$", out, re.M))
        _compiled_in |= {"core", "http_core", "so"}
    return _compiled_in


_loadable = {}


def module_load_error(name):
    """None when the stock module mod_<name> loads into this httpd, else
    httpd's own words why not (e.g. mod_ssl of an older release built
    against this machine's newer OpenSSL)."""
    if name not in _loadable:
        path = os.path.join(MODULES_DIR, f"mod_{name}.so")
        with tempfile.TemporaryDirectory(prefix="bbs-load-") as d:
            conf = os.path.join(d, "load.conf")
            with open(conf, "w") as f:
                f.write(f'LoadModule {name}_module "{path}"\n')
            r = subprocess.run([APACHE2, "-t", "-f", conf], env=_base_env(),
                               capture_output=True, text=True, timeout=30)
            out = (r.stdout + r.stderr).strip()
        _loadable[name] = None if "Cannot load" not in out \
            and os.path.exists(path) else (out.splitlines() or [path])[-1]
    return _loadable[name]


_version = None


def version():
    """(major, minor, patch) of the httpd the tests run."""
    global _version
    if _version is not None:
        return _version
    out = subprocess.run([APACHE2, "-v"], capture_output=True, text=True,
                         env=_base_env(), timeout=30).stdout
    m = re.search(r"Apache/(\d+)\.(\d+)\.(\d+)", out)
    _version = tuple(int(x) for x in m.groups()) if m else (0, 0, 0)
    return _version


def mpm_defect(mpm):
    """Why the httpd under test cannot be tested with this MPM, or None."""
    if mpm == "event" and (2, 4, 52) <= version() < (2, 4, 53):
        return ("httpd 2.4.52's event MPM can stop answering for 20 s and "
                "more after a graceful restart, with or without "
                "mod_bbstatus (README, Compatibility; fixed in 2.4.53, PR "
                "65769 and 66004): tested with worker and prefork there")
    return None


def worker_lingers(mpm=None):
    """The worker MPM before 2.4.62 keeps old children about 4.5 s after a
    graceful restart (its AH00045 defect, see known_defects)."""
    return (mpm or default_mpm()) == "worker" and version() < (2, 4, 62)


def graceful_timeout(mpm=None):
    """Seconds a request may take around a graceful restart: 5, or 15 where
    worker_lingers(), since no new child starts while the old ones keep
    their scoreboard slots (up to 6.2 s measured on 2.4.52 without the
    module; README, Compatibility)."""
    return 15 if worker_lingers(mpm) else 5


def default_mpm():
    """BBS_MPM, else event, else (where event is broken) worker."""
    mpm = os.environ.get("BBS_MPM") or "event"
    if not os.environ.get("BBS_MPM") and mpm_defect(mpm):
        mpm = "worker"
    return mpm


CHILD_SIGNAL_RE = re.compile(r"child pid (\d+) exit signal")

# The other face of event_stop_race(): the socket closed under a worker that
# is in lingering close, so re-adding it to the pollset fails (event.c
# process_lingering_close()).  The child logs this instead of crashing; it
# comes at a full restart under load without mod_bbstatus as well
# (restart_race.py --without-module counts it).
EVENT_STOP_LINGER = (r"\[mpm_event:error\] .*\(9\)Bad file descriptor: "
                     r"AH03092: process_lingering_close: apr_pollset_add "
                     r"failure")


def event_stop_race(core, pid):
    """(True, backtrace) when ``core``, written by crashed child ``pid``,
    shows the event MPM's own race at an ungraceful stop, else (False,
    backtrace or why it cannot tell).

    At a full restart or stop the child's main thread resets the sockets
    of connections in progress (event.c ``close_worker_sockets()`` ->
    ``close_socket_nonblocking()`` -> ``apr_os_sock_get()``) while the
    listener destroys the recycled connection pools; a worker that has
    just recycled its pool but not yet cleared its ``worker_sockets[]``
    entry leaves a socket whose memory is unmapped under the main thread.
    It crashes httpd without mod_bbstatus as well
    (tests/integration/restart_race.py --without-module).  Recognized by:
    the faulting thread is the child's main thread, it faults in
    ``apr_os_sock_get()`` called from the event MPM, and no frame of it is
    mod_bbstatus's."""
    if not shutil.which("gdb"):
        return False, "gdb is not installed: the core cannot be read"
    try:
        out = subprocess.run(
            ["gdb", "-q", "-batch", "-ex", "thread apply all bt 12", APACHE2,
             core], capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"gdb failed: {e}"
    # the child's main thread (its LWP is the child's pid); httpd's SIGSEGV
    # handler re-raises the signal for the core, so the fault is the frame
    # after "<signal handler called>" when the handler shows
    frames, in_main = [], False
    for line in out.splitlines():
        m = re.match(r"Thread \d+ \(Thread \S+ \(LWP (\d+)\)", line)
        if m:
            in_main = int(m.group(1)) == pid
        elif in_main and line.startswith("#"):
            frames.append(line)
    handler = [i for i, f in enumerate(frames) if "<signal handler called>" in f]
    fault = frames[handler[-1] + 1:] if handler else frames
    segv = "Program terminated with signal SIGSEGV" in out
    bt = f"main thread of {pid}:\n" + "\n".join(frames) if frames else out
    race = (segv and len(fault) >= 2
            and re.search(r"\bapr_os_sock_get\b", fault[0])
            and re.search(r"close_socket_nonblocking|close_worker_sockets"
                          r"|mod_mpm_event\.so", fault[1])
            and not any("bbstatus" in f for f in frames))
    return bool(race), bt


def _base_env(extra=None):
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG": "C",
    }
    for k in PASSTHROUGH_ENV:
        if k in os.environ:
            env[k] = os.environ[k]
    if extra:
        env.update(extra)
    return env


# --- /proc helpers -------------------------------------------------------

def _proc_stat(pid):
    """(state, ppid, pgrp, starttime) of a pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    # rest[0] = state (field 3), rest[1] = ppid, rest[2] = pgrp,
    # rest[19] = starttime (field 22)
    try:
        return rest[0], int(rest[1]), int(rest[2]), int(rest[19])
    except (IndexError, ValueError):
        return None


def _alive(pid, starttime=None):
    """True when pid exists, is not a zombie and (if given) has the same
    start time as when we first saw it (guards against pid reuse)."""
    st = _proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return starttime is None or st[3] == starttime


def _all_pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def _socket_inodes(pid):
    """Inodes of the sockets pid has open (empty when it is gone)."""
    found = set()
    try:
        names = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in names:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            found.add(int(link[8:-1]))
    return found


def _listening_inodes():
    """Inodes of every TCP socket in LISTEN state on this machine."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f, None)
                for line in f:
                    cols = line.split()
                    if len(cols) > 9 and cols[3] == "0A":
                        found.add(int(cols[9]))
        except OSError:
            continue
    return found


def _comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _tail(text, n=40):
    lines = text.splitlines()
    return "\n".join(lines[-n:])


def reachable_parent(prefix):
    """<tempdir>/<prefix>-<uid>/: a 0711 directory of ours that apache2
    children running as another user can search (for ServerRoots made
    below it), created when missing.  Raises HttpdError naming the
    directory that stands in the way."""
    parent = os.path.join(tempfile.gettempdir(), f"{prefix}-{os.geteuid()}")
    try:
        os.mkdir(parent, 0o711)
    except FileExistsError:
        pass
    st = os.lstat(parent)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() \
            or st.st_mode & 0o022:
        raise HttpdError(f"{parent} is not a directory owned by us and "
                         f"writable only by us; remove it")
    os.chmod(parent, 0o711)
    path = os.path.realpath(parent)
    while path != "/":
        path = os.path.dirname(path)
        if not os.stat(path).st_mode & 0o001:
            raise HttpdError(
                f"{path} is not searchable by others, so apache2 "
                f"children (not root) cannot reach {parent}; point "
                f"TMPDIR at a world-searchable directory")
    return parent


class Httpd:
    """One apache2 instance with its own ServerRoot."""

    # every instance ever created and not yet forgotten (conftest uses this)
    instances = []

    def __init__(self, tmpdir, module_path=None, mpm=None,
                 loglevel="info", extra_modules=(), load_bbstatus=True,
                 module_loglevel=None, server_limit=None, start_servers=None,
                 threads_per_child=25, max_request_workers=None, env=None,
                 name=None, core_dumps=None, shape="main"):
        # ``link``: the tmpdir given; ``root``: the real ServerRoot (the
        # same directory, except as root: see _external_root)
        self.link = self.root = os.path.abspath(str(tmpdir))
        self.name = name or os.path.basename(self.root)
        self._as_root = os.geteuid() == 0
        if self._as_root:
            self._external_root()
        if module_path is None:
            module_path = os.environ.get("BBS_MODULE") or os.path.join(
                REPO, ".libs", "mod_bbstatus.so")
        self.module_path = os.path.abspath(str(module_path))
        self.mpm = mpm or default_mpm()
        self.loglevel = loglevel
        self.module_loglevel = module_loglevel
        self.extra_modules = tuple(extra_modules)
        self.load_bbstatus = load_bbstatus
        # a prefork child serves one connection at a time: enough of them
        # for a test's keep-alive load next to its diagnostics requests
        prefork = self.mpm == "prefork"
        self.server_limit = server_limit or (16 if prefork else 2)
        self.start_servers = start_servers or (4 if prefork else 2)
        self.threads_per_child = threads_per_child
        self.max_request_workers = max_request_workers
        self.env = dict(env or {})
        if core_dumps is None:
            core_dumps = os.environ.get("BBS_CORE_DUMPS", "") not in ("", "0")
        self.core_dumps = core_dumps
        if shape not in SHAPES:
            raise ValueError(f"shape {shape!r} is not one of {SHAPES}")
        self.shape = shape
        self.port = free_port()

        self.conf_dir = os.path.join(self.root, "conf")
        self.logs_dir = os.path.join(self.root, "logs")
        self.run_dir = os.path.join(self.root, "run")
        self.htdocs = os.path.join(self.root, "htdocs")
        self.conf_path = os.path.join(self.conf_dir, "httpd.conf")
        self.pid_path = os.path.join(self.run_dir, "httpd.pid")
        self.error_log_path = os.path.join(self.logs_dir, "error_log")
        self.access_log_path = os.path.join(self.logs_dir, "access_log")
        self.cores_dir = os.path.join(self.root, "cores")

        self.pid = None              # main process while running
        self._pid_start = None       # its /proc starttime
        self._known = {}             # pid -> starttime of every process seen
        self.started = False
        self.body = None             # body of the current configuration
        # output of apache2 -k start/graceful/restart (normally empty) and
        # "[harness] ..." problems found by stop(); see unexpected_log_lines
        self.notes = []
        self.stop_was_clean = None

        self._prepare_dirs()
        Httpd.instances.append(self)

    # --- filesystem -----------------------------------------------------

    def _prepare_dirs(self):
        for d in (self.root, self.conf_dir, self.logs_dir, self.run_dir,
                  self.htdocs):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        if self.core_dumps:
            os.makedirs(self.cores_dir, exist_ok=True)
            os.chmod(self.cores_dir, 0o1777)   # children write as User
        index = os.path.join(self.htdocs, "index.html")
        if not os.path.exists(index):
            with open(index, "w") as f:
                f.write("ok\n")
            os.chmod(index, 0o644)

    def _external_root(self):
        """As root, children run as an unprivileged user and must be able to
        reach the ServerRoot.  pytest's tmp_path lives below a 0700
        /tmp/pytest-of-root (which every new pytest session resets to 0700,
        so chmod-ing it does not stick while other sessions run).  Hence
        the real ServerRoot is a fresh 0755 directory below
        <tempdir>/bbs-httpd-<uid>/ and ``tmpdir`` becomes a symlink to it.
        Roots whose symlink is gone (pytest pruned that basetemp) are
        removed here."""
        link = self.root
        parent = reachable_parent("bbs-httpd")
        self._prune_roots(parent)
        if os.path.islink(link):
            target = os.path.realpath(link)
            if os.path.dirname(target) == os.path.realpath(parent):
                self.root = target          # same tmpdir used again
                return
            raise HttpdError(f"{link} is a symlink to {target}")
        if os.path.isdir(link):
            if os.listdir(link):
                raise HttpdError(f"{link} exists and is not empty")
            os.rmdir(link)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        tag = re.sub(r"[^\w.-]+", "_", os.path.basename(link))[:40]
        real = tempfile.mkdtemp(prefix=f"{tag}-", dir=parent)
        os.chmod(real, 0o755)
        with open(os.path.join(real, ".link"), "w") as f:
            f.write(link)
        os.symlink(real, link)
        self.root = real

    @staticmethod
    def _prune_roots(parent):
        now = time.time()
        for name in os.listdir(parent):
            real = os.path.join(parent, name)
            try:
                with open(os.path.join(real, ".link")) as f:
                    link = f.read()
                if now - os.lstat(real).st_mtime < 300:
                    continue
            except OSError:
                continue
            if os.path.realpath(link) != real:
                shutil.rmtree(real, ignore_errors=True)

    # --- configuration --------------------------------------------------

    def _run_user(self):
        for user in ("nobody", "www-data", "daemon"):
            try:
                pwd.getpwnam(user)
                break
            except KeyError:
                continue
        else:
            raise HttpdError("no unprivileged account to run children as")
        for group in ("nogroup", "nobody", user):
            try:
                grp.getgrnam(group)
                return user, group
            except KeyError:
                continue
        raise HttpdError("no unprivileged group to run children as")

    def _check_module(self):
        if self.load_bbstatus and not os.path.isfile(self.module_path):
            raise HttpdError(
                f"mod_bbstatus is not built: {self.module_path} does not "
                f"exist (build the module first, or set BBS_MODULE to the "
                f"freshly built .so)")

    def _load_lines(self):
        compiled = compiled_in_modules()
        lines = []
        seen = set()

        def add(name, path=None):
            if name.startswith("mod_"):
                name = name[4:]
            if name.endswith("_module"):
                name = name[:-7]
            if name in compiled or name in seen:
                return
            seen.add(name)
            path = path or os.path.join(MODULES_DIR, f"mod_{name}.so")
            lines.append(f'LoadModule {name}_module "{path}"')

        add(f"mpm_{self.mpm}")
        for m in BASE_MODULES:
            add(m)
        for m in self.extra_modules:
            if isinstance(m, (tuple, list)):
                add(m[0], m[1])
            else:
                add(m)
        if self.load_bbstatus:
            add("bbstatus", self.module_path)
        return lines

    def _mpm_lines(self):
        sl, ss = self.server_limit, self.start_servers
        mrw = self.max_request_workers
        if self.mpm == "prefork":
            mrw = min(mrw or sl, sl)
            return [
                f"ServerLimit {sl}",
                f"StartServers {min(ss, sl)}",
                "MinSpareServers 1",
                f"MaxSpareServers {max(sl, 2)}",
                f"MaxRequestWorkers {mrw}",
            ]
        tpc = self.threads_per_child
        mrw = min(mrw or sl * tpc, sl * tpc)
        return [
            f"ServerLimit {sl}",
            f"ThreadLimit {max(64, tpc)}",
            f"StartServers {min(ss, sl)}",
            f"ThreadsPerChild {tpc}",
            f"MaxRequestWorkers {mrw}",
            # the defaults (75/250) exceed a small ServerLimit and make the
            # parent log "server reached MaxRequestWorkers" errors
            f"MinSpareThreads {min(tpc, mrw)}",
            f"MaxSpareThreads {mrw}",
        ]

    def config_text(self, body=""):
        """The full httpd.conf for ``body`` (placeholders substituted)."""
        self._check_module()
        loglevel = self.loglevel
        if self.load_bbstatus and self.module_loglevel:
            loglevel += f" bbstatus:{self.module_loglevel}"
        lines = [
            "# generated by tests/integration/httpd.py",
            f'ServerRoot "{self.root}"',
            *self._load_lines(),
            "",
            f"Listen 127.0.0.1:{self.port}",
            "ServerName 127.0.0.1",
            f'PidFile "{self.pid_path}"',
            f'DefaultRuntimeDir "{self.run_dir}/"',
            f"Mutex file:{self.run_dir} default",
            "ErrorLog logs/error_log",
            f"LogLevel {loglevel}",
            'LogFormat "%h %>s %D \\"%r\\" backend=%{BALANCER_WORKER_NAME}e" bbs',
            "CustomLog logs/access_log bbs",
            f'TypesConfig "{MIME_TYPES}"' if os.path.exists(MIME_TYPES)
            else f'TypesConfig "{self._empty_mime_types()}"',
            f'DocumentRoot "{self.htdocs}"',
            # this build looks for .htaccess files unless told otherwise
            "<Directory />",
            "    AllowOverride None",
            "</Directory>",
            *self._mpm_lines(),
            "GracefulShutdownTimeout 3",
            *([f'CoreDumpDirectory "{self.cores_dir}"'] if self.core_dumps
              else []),
            "Timeout 10",
        ]
        if self._as_root:
            user, group = self._run_user()
            lines += [f"User {user}", f"Group {group}"]
        body = (body or "").replace("@PORT@", str(self.port)).replace(
            "@ROOT@", self.root)
        lines += ["", "# --- test body ---", *self._shaped(body), ""]
        return "\n".join(lines)

    # server-wide directives a body may hold; the vhost shape keeps them
    # in the main server, where httpd takes them
    GLOBAL_DIRECTIVES = ("BBStatusThreads", "ExtendedStatus", "ProxyHCTPsize",
                         "LoadModule", "Listen", "Mutex")

    def _shaped(self, body):
        if self.shape == "main":
            return [body]
        glob, inner = [], []
        for line in body.splitlines():
            word = line.strip().split(None, 1)[0] if line.strip() else ""
            (glob if word in self.GLOBAL_DIRECTIVES else inner).append(line)
        # the only name-based vhost of the address: every request lands in
        # it, as on a server with one site enabled
        return [*glob,
                f"<VirtualHost 127.0.0.1:{self.port}>",
                "    ServerName vhost.bbstatus.test",
                *inner,
                "</VirtualHost>"]

    def _empty_mime_types(self):
        path = os.path.join(self.conf_dir, "mime.types")
        if not os.path.exists(path):
            open(path, "w").close()
        return path

    def write_conf(self, body="", path=None):
        text = self.config_text(body)
        with open(path or self.conf_path, "w") as f:
            f.write(text)
        return path or self.conf_path

    # --- running apache2 ------------------------------------------------

    def _apache2(self, *args, conf=None, record=None, timeout=30):
        cmd = [APACHE2, "-d", self.root, "-f", conf or self.conf_path, *args]
        # output to a file, not a pipe: the daemon must never hold our pipe
        out_path = os.path.join(self.logs_dir, "apache2.cmd.out")
        with open(out_path, "w+b") as out:
            try:
                rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT,
                                    env=_base_env(self.env),
                                    preexec_fn=self._preexec(),
                                    timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                rc = -1
                out.seek(0, 2)
                out.write(f"\n[harness] {' '.join(cmd)} timed out\n".encode())
            out.seek(0)
            text = out.read().decode("utf-8", "replace")
        if record and rc == 0:
            # a failing command raises with its output instead
            for line in text.splitlines():
                if line.strip():
                    self.notes.append(f"[apache2 {record}] {line}")
        return rc, text

    def _preexec(self):
        if not self.core_dumps:
            return None

        def allow_cores():
            resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY,
                                                      resource.RLIM_INFINITY))
        return allow_cores

    def cores(self):
        """Core files written so far (core_dumps=True / BBS_CORE_DUMPS=1;
        where they land depends on /proc/sys/kernel/core_pattern)."""
        try:
            return sorted(os.path.join(self.cores_dir, n)
                          for n in os.listdir(self.cores_dir))
        except OSError:
            return []

    def crashed_children(self, since=0):
        """[(pid, line)] of the children that the error log (from byte
        ``since``) says died of a signal."""
        return [(int(m.group(1)), line)
                for line in self.error_log_since(since).splitlines()
                for m in [CHILD_SIGNAL_RE.search(line)] if m]

    def take_core(self, pid, deadline=10):
        """The core file of crashed child ``pid``, renamed to
        ``cores/core.<pid>`` so that the next crash cannot overwrite it
        (with kernel.core_pattern "core" every core is ``cores/core``);
        None if none came within ``deadline`` s."""
        dest = os.path.join(self.cores_dir, f"core.{pid}")
        end = time.monotonic() + deadline
        while True:
            if os.path.exists(dest):
                return dest
            plain = os.path.join(self.cores_dir, "core")
            if os.path.exists(plain):
                os.rename(plain, dest)
                return dest
            if time.monotonic() >= end:
                return None
            time.sleep(0.1)

    def _read_pidfile(self):
        try:
            with open(self.pid_path) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def _remember(self, pid):
        st = _proc_stat(pid)
        if st is not None and pid not in self._known:
            self._known[pid] = st[3]

    def is_running(self):
        return self.pid is not None and _alive(self.pid, self._pid_start)

    def start(self, body="", deadline=15):
        """Write the configuration and start apache2; return when the pid
        file exists and the port accepts TCP connections."""
        if self.is_running():
            raise HttpdError(f"{self.name}: already running (pid {self.pid})")
        self.body = body
        stale = self._read_pidfile()
        if stale is not None:
            if _alive(stale) and _comm(stale) == SERVER_COMM:
                raise HttpdError(f"{self.name}: an apache2 (pid {stale}) "
                                 f"from {self.pid_path} is still running")
            os.unlink(self.pid_path)    # stale: apache2 would trust it
        for attempt in range(3):
            self.write_conf(body)
            offset = self.log_offset()
            rc, out = self._apache2("-k", "start", record="-k start")
            try:
                if rc != 0:
                    raise HttpdError(
                        f"{self.name}: apache2 -k start failed (rc={rc})")
                self._wait_started(offset, deadline)
            except HttpdError as e:
                log = self.error_log_since(offset)
                self._kill_all()
                if f"could not bind to address 127.0.0.1:{self.port}" \
                        in out + log and attempt < 2:
                    self.port = free_port()   # lost a port race: retry
                    continue
                raise HttpdError(f"{e}\n--- apache2 -k start output ---\n"
                                 f"{out}\n--- error_log tail ---\n"
                                 f"{_tail(log)}") from None
            self.started = True
            self.stop_was_clean = None
            return self
        raise HttpdError("unreachable")

    def _wait_started(self, offset, deadline):
        end = time.monotonic() + deadline
        while True:
            pid = self._read_pidfile()
            if pid is not None and _alive(pid):
                if self.pid != pid:
                    self.pid = pid
                    self._pid_start = _proc_stat(pid)[3]
                    self._remember(pid)
                if self._port_open():
                    self.children()
                    return
            elif pid is not None or self.pid is not None:
                raise HttpdError(f"{self.name}: apache2 died during startup")
            log = self.error_log_since(offset)
            if pid is None and LEVEL_RE.search(log) and re.search(
                    r":emerg\]|Configuration Failed|shutting down", log):
                # give a dying daemon a moment, then report
                time.sleep(0.2)
                if self._read_pidfile() is None:
                    raise HttpdError(f"{self.name}: apache2 failed to start")
            if time.monotonic() >= end:
                raise HttpdError(
                    f"{self.name}: apache2 not up after {deadline}s "
                    f"(pid file {'present' if pid else 'missing'}, "
                    f"port {self.port} not answering)")
            time.sleep(0.05)

    def _port_open(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port),
                                          timeout=0.5):
                return True
        except OSError:
            return False

    def _signal_cmd(self, what, body, deadline):
        if not self.is_running():
            raise HttpdError(f"{self.name}: cannot {what}: not running")
        if body is not None:
            self.body = body
            self.write_conf(body)
        old = self.children()
        offset = self.log_offset()
        rc, out = self._apache2("-k", what, record=f"-k {what}")
        if rc != 0:
            raise HttpdError(
                f"{self.name}: apache2 -k {what} failed (rc={rc}):\n{out}")
        end = time.monotonic() + deadline
        while True:
            log = self.error_log_since(offset)
            if re.search(READY_RE, log):
                break
            if not self.is_running():
                raise HttpdError(
                    f"{self.name}: apache2 died during {what}:\n{out}\n"
                    f"--- error_log tail ---\n{_tail(log)}")
            if time.monotonic() >= end:
                raise HttpdError(
                    f"{self.name}: {what} not completed after {deadline}s:\n"
                    f"{out}\n--- error_log tail ---\n{_tail(log)}")
            time.sleep(0.05)
        self._wait_old_children_stop_accepting(old, what, end)
        self.children()
        return offset

    def _wait_old_children_stop_accepting(self, old, what, end):
        """"resuming normal operations" is logged before every child of the
        previous generation has noticed the graceful restart: until it
        does, its listener thread still accepts connections and answers
        them with the old configuration.  Wait until none of them holds
        one of the main process's listening sockets any more."""
        listening = _socket_inodes(self.pid) & _listening_inodes()
        if not listening:
            return
        while True:
            still = [pid for pid in old if pid != self.pid
                     and _alive(pid, self._known.get(pid))
                     and _socket_inodes(pid) & listening]
            if not still:
                return
            if time.monotonic() >= end:
                raise HttpdError(
                    f"{self.name}: after {what}, children {still} of the "
                    f"previous generation still hold the listening sockets")
            time.sleep(0.02)

    def graceful(self, body=None, deadline=15):
        """Graceful restart (optionally with a new body); returns the error
        log offset from before the restart."""
        return self._signal_cmd("graceful", body, deadline)

    def restart(self, body=None, deadline=15):
        """Hard restart (SIGHUP); returns the log offset from before it."""
        return self._signal_cmd("restart", body, deadline)

    def configtest(self, body=""):
        """(returncode, output) of ``apache2 -t`` on the config for body.
        Uses a separate file, so a running instance's config is untouched."""
        path = os.path.join(self.conf_dir, "configtest.conf")
        self.write_conf(body, path=path)
        return self._apache2("-t", conf=path)

    def stop(self, deadline=15):
        """Stop apache2 as Debian's apache2.service does (graceful-stop:
        SIGWINCH to the main process; GracefulShutdownTimeout bounds it),
        wait for it (once every child has finished, a SIGTERM spares the
        second the MPM sleeps before it notices), then SIGKILL whatever is
        left of its processes.
        Idempotent.  Returns True when the shutdown was clean.  (An
        ungraceful stop, SIGTERM, is what restart() exercises; see README,
        Troubleshooting, for the event MPM's race on that path.)"""
        pid = self.pid
        if pid is None:
            p = self._read_pidfile()
            if p is not None and _alive(p) and _comm(p) == SERVER_COMM:
                pid = self.pid = p
                self._pid_start = _proc_stat(p)[3]
        if pid is None or not _alive(pid, self._pid_start):
            if pid is not None:
                left = self._kill_all()
                self.notes.append(
                    f"[harness] {self.name}: apache2 pid {pid} was already "
                    f"gone at stop()"
                    + (f"; killed leftovers {sorted(left)}" if left else ""))
                self.stop_was_clean = False
            elif self._known:
                self._kill_all()
            self.pid = None
            return self.stop_was_clean if self.stop_was_clean is not None \
                else True
        self.children()
        clean = True
        offset = self.log_offset()
        try:
            os.kill(pid, signal.SIGWINCH)
        except ProcessLookupError:
            pass
        end = time.monotonic() + deadline
        cut_short = False
        while _alive(pid, self._pid_start):
            if not cut_short and not self.children() and re.search(
                    r"caught SIGWINCH, shutting down gracefully",
                    self.error_log_since(offset)):
                # every child has finished gracefully; the MPM's stop loop
                # now only sleeps out its second before it looks again.
                # SIGTERM ends that sleep and nothing else: the main
                # process leaves the loop and exits as it would have.
                cut_short = True
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            if time.monotonic() >= end:
                clean = False
                self.notes.append(
                    f"[harness] {self.name}: apache2 pid {pid} did not exit "
                    f"within {deadline}s after graceful-stop; killed")
                break
            time.sleep(0.05)
        leftovers = self._kill_all()
        if leftovers and clean:
            clean = False
            self.notes.append(
                f"[harness] {self.name}: processes left after apache2 exited "
                f"were killed: {sorted(leftovers)}")
        if not clean and os.path.exists(self.pid_path):
            os.unlink(self.pid_path)
        self.pid = None
        self.stop_was_clean = clean
        return clean

    def _kill_all(self):
        """SIGKILL the main process, its children, its process group and
        every process we have seen belonging to this instance."""
        targets = {}
        main = self.pid
        for pid, start in self._known.items():
            if _alive(pid, start):
                targets[pid] = start
        if main is not None:
            for pid in _all_pids():
                st = _proc_stat(pid)
                if st and st[0] not in ("Z", "X") and (
                        st[1] == main or st[2] == main):
                    targets[pid] = st[3]
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        end = time.monotonic() + 5
        while any(_alive(p, s) for p, s in targets.items()) \
                and time.monotonic() < end:
            time.sleep(0.02)
        self._known.clear()
        self.pid = None
        return set(targets)

    def children(self):
        """Pids of the current child processes of the main process."""
        if self.pid is None:
            return []
        kids = []
        for pid in _all_pids():
            st = _proc_stat(pid)
            if st and st[1] == self.pid and st[0] not in ("Z", "X"):
                kids.append(pid)
                self._known.setdefault(pid, st[3])
        return sorted(kids)

    # --- HTTP -----------------------------------------------------------

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path, headers=None, method="GET", timeout=None,
            body=None):
        """(status, Headers, body bytes) of one request on a new
        connection.  The default timeout is graceful_timeout(): any request
        may follow a graceful restart, and where old children linger no
        child answers it before they are gone."""
        if timeout is None:
            timeout = graceful_timeout(self.mpm)
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, Headers(resp.getheaders()), data
        finally:
            conn.close()

    # --- logs -----------------------------------------------------------

    def log_offset(self):
        try:
            return os.path.getsize(self.error_log_path)
        except OSError:
            return 0

    def error_log_since(self, offset=0):
        try:
            with open(self.error_log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def error_log(self):
        return self.error_log_since(0)

    def access_log(self):
        try:
            with open(self.access_log_path, encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, regex, deadline=10, since=0):
        """Poll the error log (from byte offset ``since``) until ``regex``
        matches; return the match."""
        rx = re.compile(regex, re.M)

        def probe():
            return rx.search(self.error_log_since(since))
        try:
            return wait_until(probe, deadline, what=f"error_log /{regex}/")
        except AssertionError as e:
            raise AssertionError(
                f"{e}\n--- {self.name} error_log tail ---\n"
                f"{_tail(self.error_log_since(since))}") from None

    def notes_offset(self):
        """Position in ``notes`` (for ``unexpected_log_lines(notes_since=)``)."""
        return len(self.notes)

    def unexpected_log_lines(self, since=0, allow=(), notes_since=None):
        """Lines at warn level or worse (and crash/sanitizer lines) in the
        error log from byte offset ``since`` that no ``allow`` regex matches.

        Also reported: any output of ``apache2 -k start/graceful/restart``
        and "[harness]" problems found by stop() (``notes`` from index
        ``notes_since``; default: all of them when since == 0, else none).
        AH03257 lines are reported even when allowed."""
        allow = [re.compile(a) for a in list(allow) + self.known_defects()]
        if notes_since is None:
            notes_since = 0 if since == 0 else len(self.notes)
        candidates = [
            line for line in self.error_log_since(since).splitlines()
            if LEVEL_RE.search(line) or any(s in line for s in SUSPICIOUS)
            or any(s in line for s in NEVER_ALLOWED)]
        candidates += self.notes[notes_since:]
        return [line for line in candidates
                if any(s in line for s in NEVER_ALLOWED)
                or not any(a.search(line) for a in allow)]

    def known_defects(self):
        """Warnings of the httpd release under test that are its own and
        come without the module as well (make check-compat)."""
        pats = []
        if worker_lingers(self.mpm):
            # "mpm_worker: Fix possible warning (AH00045) about children
            # processes not terminating timely" (httpd 2.4.62 CHANGES): a
            # stop takes about 5 s with or without mod_bbstatus before
            pats.append(r"AH00045: child process \d+ still did not exit, "
                        r"sending a SIGTERM")
            # the same defect keeps old children about 4.5 s after a
            # graceful restart (measured on 2.4.37 with and without the
            # module; 0.05 s on 2.4.62): one still there at the next
            # graceful restart is "long lost" to the MPM when it exits
            pats.append(r"AH00291: long lost child came home!")
            # and while they keep their scoreboard slots no new child
            # can start: requests wait for them (seen without the module
            # on 2.4.52, test_start_get_graceful_stop)
            pats.append(r"AH00288: scoreboard is full, not at "
                        r"MaxRequestWorkers")
        return pats

    # --- context manager ------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return f"<Httpd {self.name} port={self.port} pid={self.pid}>"


# The diagnostics pages next to a catch-all ProxyPass, as the README shows
# them: tests append it to their configuration.
DIAG = """
ProxyPass /bbstatus !
ProxyPass /server-status !
ProxyPass /balancer-manager !
<Location /bbstatus>
    SetHandler bbstatus
</Location>
<Location /server-status>
    SetHandler server-status
</Location>
<Location /balancer-manager>
    SetHandler balancer-manager
</Location>
"""
