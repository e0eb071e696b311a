"""The RPM: `make rpm` from a clean clone gives a binary and a source RPM
that rpmlint accepts (rpm/mod_bbstatus.rpmlintrc gives each filter's
reason), laid out as Fedora's and RHEL's httpd module packages are. Its
files, installed with rpm into a directory of their own next to httpd
2.4.62 (RHEL 9's release) in RHEL's layout, load through
conf.modules.d/10-bbstatus.conf after 00-proxy.conf and route through a
BBSTATUS balancer; `rpm -e` leaves nothing of them.

Nothing of the machine is touched (rpm works with --root on that
directory, which has its own rpm database), but the package is built from
a clean clone with httpd 2.4.62 (scripts/build-httpd.sh, about 5 minutes
the first time), so it runs under `make check-packages` (env
BBS_PACKAGE_TESTS=1), as the .deb's tests do; CI runs them (.ci/run)."""

import os
import re
import shutil
import signal
import tempfile

import pytest

from bbs import BB, get, murl, params, records, site, traffic
from httpd import LEVEL_RE, free_port, reachable_parent, wait_until
from pkgtools import REPO, run, version

HTTPD_VERSION = "2.4.62"
HTTPD_SRC = os.environ.get("HTTPD_SRC") or os.path.join(
    os.path.dirname(REPO), "shared", "httpd-src")
TOOLS = ("git", "rpmbuild", "rpmlint", "rpm")
DBPATH = "/var/lib/rpm"
MODDIR = "usr/lib64/httpd/modules"
# what the package holds, as RHEL's module packages lay it out
LAYOUT = (
    "/etc/httpd/conf.d/bbstatus.conf",
    "/etc/httpd/conf.modules.d/10-bbstatus.conf",
    "/" + MODDIR + "/mod_bbstatus.so",
)


def httpd_prefix():
    return os.path.join(REPO, "build", "httpd", HTTPD_VERSION)


@pytest.fixture(scope="module")
def rpms(tmp_path_factory):
    if os.environ.get("BBS_PACKAGE_TESTS") != "1":
        pytest.skip("builds httpd 2.4.62 and the RPM from a clean clone: "
                    "make check-packages runs it")
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.fail("missing %s: bash scripts/deps.sh deb" % " ".join(missing))
    prefix = httpd_prefix()
    if not os.path.exists(os.path.join(prefix, ".complete")) \
            and not os.path.isdir(HTTPD_SRC):
        pytest.skip("httpd %s is not built (build/httpd/) and its release "
                    "source is not in %s" % (HTTPD_VERSION, HTTPD_SRC))
    # built here first, with this checkout's path as its prefix: built from
    # the clone below, apxs and config_vars.mk would name the clone's
    # temporary path, and make check-compat, which uses the same build,
    # would find them gone
    run(["bash", os.path.join(REPO, "scripts", "build-httpd.sh"),
         HTTPD_VERSION], cwd=REPO, timeout=1800, check=True,
        env=dict(os.environ, HTTPD_SRC=HTTPD_SRC))
    tmp = str(tmp_path_factory.mktemp("rpm"))
    clone = os.path.join(tmp, "clone")
    run(["git", "clone", "-q", REPO, clone], check=True)
    # the clone shares this checkout's httpd builds (build/httpd/, made
    # once) instead of building httpd again
    os.makedirs(os.path.join(REPO, "build", "httpd"), exist_ok=True)
    os.makedirs(os.path.join(clone, "build"))
    os.symlink(os.path.join(REPO, "build", "httpd"),
               os.path.join(clone, "build", "httpd"))
    r = run(["make", "--no-print-directory", "rpm"], cwd=clone, timeout=1800,
            env=dict(os.environ, HTTPD_SRC=HTTPD_SRC))
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    out = os.path.join(clone, "build", "rpm")
    arch = run(["rpm", "--eval", "%{_arch}"], check=True).stdout.strip()
    name = "mod_bbstatus-%s-1" % version()
    binary = os.path.join(out, "RPMS", arch, "%s.%s.rpm" % (name, arch))
    source = os.path.join(out, "SRPMS", name + ".src.rpm")
    for p in (binary, source):
        assert os.path.isfile(p), r.stdout[-3000:]
    return {"rpm": binary, "srpm": source, "clone": clone,
            "spec": os.path.join(out, "SPECS", "mod_bbstatus.spec"),
            "make_output": r.stdout}


def query(path, fmt):
    return run(["rpm", "-qp", "--qf", fmt, path], check=True).stdout


def test_bbs_660_01_rpmlint_layout_and_dependencies(rpms):
    r = run(["rpmlint", "-r", os.path.join(rpms["clone"], "rpm",
                                           "mod_bbstatus.rpmlintrc"),
             rpms["rpm"], rpms["srpm"], rpms["spec"]])
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"\b0 errors, 0 warnings\b", r.stdout), r.stdout
    # every filter kept has its reason in a comment right above it
    with open(os.path.join(REPO, "rpm", "mod_bbstatus.rpmlintrc")) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("addFilter("):
            above = lines[i - 1] if i else ""
            assert above.startswith(("#", "addFilter(")), line

    # the layout: the module, its LoadModule line alone in
    # conf.modules.d, the settings commented out in conf.d, both config
    # files the administrator's (noreplace); and make rpm printed it
    files = dict(ln.rsplit(" ", 1) for ln in query(
        rpms["rpm"], "[%{FILENAMES} %{FILEFLAGS:fflags}\n]").splitlines())
    for path in LAYOUT:
        assert path in files, sorted(files)
        assert path in rpms["make_output"], "make rpm did not list " + path
    for conf in LAYOUT[:2]:
        assert "c" in files[conf] and "n" in files[conf], (conf, files[conf])
    assert "c" not in files[LAYOUT[2]]
    docs = [p for p in files if p.startswith("/usr/share/doc/")]
    assert any(p.endswith("/bbstatus-rules.yml") for p in docs), docs
    for name in sorted(os.listdir(os.path.join(REPO, "conf.d"))):
        if name.endswith(".conf.example"):
            assert any(p.endswith("/" + name) for p in docs), (name, docs)
    assert any(p.endswith("/atlassian-products.md") for p in docs), docs
    assert any(p.endswith("/LICENSE") for p in files), sorted(files)
    allowed = ("/usr/share/doc/mod_bbstatus", "/usr/share/licenses/mod_bbstatus",
               "/usr/lib/.build-id")
    assert [p for p in files if p not in LAYOUT
            and not p.startswith(allowed)] == [], sorted(files)

    assert query(rpms["rpm"], "%{NAME} %{VERSION} %{RELEASE} %{ARCH}") \
        == "mod_bbstatus %s 1 %s" % (version(), os.path.basename(
            os.path.dirname(rpms["rpm"])))
    requires = query(rpms["rpm"], "[%{REQUIRENEVRS}\n]").splitlines()
    mmn = re.search(r"#define MODULE_MAGIC_NUMBER_MAJOR (\d+)", open(
        os.path.join(httpd_prefix(), "include", "ap_mmn.h")).read()).group(1)
    assert "httpd-mmn = %sx8664" % mmn in requires, requires
    assert any(re.match(r"httpd(\(x86-64\))?$", x) for x in requires), requires
    assert any(x.startswith("libjansson.so.4") for x in requires), requires
    # no RUNPATH, no mod_proxy.so entry: neither exists on RHEL
    so = os.path.join(rpms["clone"], "build", "extracted.so")
    run(["sh", "-c", 'rpm2cpio "$0" | cpio -i --quiet --to-stdout "./$1" '
         '> "$2"', rpms["rpm"], MODDIR + "/mod_bbstatus.so", so], check=True)
    dyn = run(["readelf", "-d", so], check=True).stdout
    assert "RPATH" not in dyn and "RUNPATH" not in dyn, dyn
    assert "mod_proxy.so" not in dyn and "libjansson" in dyn, dyn

    # the source RPM holds the spec and make dist's tarball
    contents = run(["rpm", "-qlp", rpms["srpm"]], check=True).stdout.split()
    assert sorted(contents) == sorted(["mod_bbstatus.spec",
                                       "mod_bbstatus-%s.tar.gz" % version()])


# ---- installed beside httpd 2.4.62 in RHEL's layout -----------------------

# RHEL 9's conf.modules.d, for the modules the test uses; those this httpd
# has compiled in (watchdog, unixd, log_config) have no LoadModule line
RHEL_MODULES = {
    "00-base.conf": ("authz_core", "authz_host", "mime", "slotmem_shm",
                     "status", "watchdog", "unixd", "log_config"),
    "00-mpm.conf": ("mpm_event",),
    "00-proxy.conf": ("proxy", "lbmethod_byrequests", "proxy_balancer",
                      "proxy_hcheck", "proxy_http"),
}


def compiled_in(httpd_bin):
    out = run([httpd_bin, "-l"], check=True).stdout
    return set(re.findall(r"^\s*mod_(\w+)\.c\s*$", out, re.M))


def rhel_layout(root, port, body):
    """httpd's own files as RHEL's httpd and filesystem packages lay them
    out in ``root``: /etc/httpd with conf/, conf.d/, conf.modules.d/ and the
    modules, logs and run symlinks, the stock modules in
    /usr/lib64/httpd/modules (links to this httpd build's)."""
    prefix = httpd_prefix()
    etc = os.path.join(root, "etc", "httpd")
    moddir = os.path.join(root, MODDIR)
    for d in (os.path.join(etc, "conf"), os.path.join(etc, "conf.d"),
              os.path.join(etc, "conf.modules.d"), moddir,
              os.path.join(root, "var", "log", "httpd"),
              os.path.join(root, "run", "httpd"),
              os.path.join(root, "var", "www", "html"),
              # RHEL's filesystem package owns these
              os.path.join(root, "usr", "lib"),
              os.path.join(root, "usr", "share", "doc"),
              os.path.join(root, "usr", "share", "licenses")):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
    os.symlink("../../" + MODDIR, os.path.join(etc, "modules"))
    os.symlink("../../var/log/httpd", os.path.join(etc, "logs"))
    os.symlink("../../run/httpd", os.path.join(etc, "run"))
    built_in = compiled_in(os.path.join(prefix, "bin", "httpd"))
    for conf, mods in RHEL_MODULES.items():
        lines = []
        for m in mods:
            if m in built_in:
                continue
            os.symlink(os.path.join(prefix, "modules", "mod_%s.so" % m),
                       os.path.join(moddir, "mod_%s.so" % m))
            lines.append("LoadModule %s_module modules/mod_%s.so" % (m, m))
        with open(os.path.join(etc, "conf.modules.d", conf), "w") as f:
            f.write("\n".join(lines) + "\n")
    user = ["User nobody", "Group nogroup"] if os.geteuid() == 0 else []
    # RHEL's httpd.conf, cut to what a loopback test needs: the module
    # files are included as there, conf.modules.d/*.conf first
    with open(os.path.join(etc, "conf", "httpd.conf"), "w") as f:
        f.write("\n".join([
            'ServerRoot "%s"' % etc,
            "Listen 127.0.0.1:%d" % port,
            "Include conf.modules.d/*.conf",
            *user,
            "ServerName 127.0.0.1",
            "PidFile run/httpd.pid",
            "Mutex file:run default",
            'DocumentRoot "%s"' % os.path.join(root, "var", "www", "html"),
            'ErrorLog "logs/error_log"',
            "LogLevel info",
            "TypesConfig /dev/null",
            "ServerLimit 2",
            "StartServers 1",
            "ThreadsPerChild 25",
            "MaxRequestWorkers 50",
            "MinSpareThreads 25",
            "MaxSpareThreads 50",
            "GracefulShutdownTimeout 3",
            "IncludeOptional conf.d/*.conf",
            ""]))
    with open(os.path.join(etc, "conf.d", "site.conf"), "w") as f:
        f.write(body)
    return etc


def tree(path):
    out = set()
    for base, dirs, files in os.walk(path):
        for n in dirs + files:
            out.add(os.path.relpath(os.path.join(base, n), path))
    return out


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def children(pid):
    kids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return kids


class Server:
    """httpd 2.4.62 started on RHEL's layout in a root of its own; stopped
    by its pid (and its children's)."""

    def __init__(self, etc, port):
        self.etc, self.port, self.pid, self.kids = etc, port, None, []
        self.httpd = os.path.join(httpd_prefix(), "bin", "httpd")
        self.log = os.path.join(etc, "logs", "error_log")

    def start(self, deadline=15):
        r = run([self.httpd, "-d", self.etc, "-f", "conf/httpd.conf",
                 "-k", "start"])
        assert r.returncode == 0, r.stdout + r.stderr + self.error_log()
        pidfile = os.path.join(self.etc, "run", "httpd.pid")

        def up():
            try:
                with open(pidfile) as f:
                    self.pid = int(f.read().strip())
                get(self.port, "/", timeout=1)
                return True
            except (OSError, ValueError):
                return False
        wait_until(up, deadline, what="httpd 2.4.62 answering on %d: %s" % (
            self.port, self.error_log()[-2000:]))
        self.kids = children(self.pid)

    def get(self, path, headers=None):
        return get(self.port, path, headers=headers)

    def error_log(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, deadline=15):
        if self.pid is None:
            return
        pids = [self.pid] + self.kids + children(self.pid)
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            wait_until(lambda: not any(alive(p) for p in pids), deadline,
                       what="httpd %d to stop" % self.pid)
        finally:
            for p in pids:
                if alive(p):
                    os.kill(p, signal.SIGKILL)
            self.pid = None


@pytest.fixture
def rhel_root():
    # children (User nobody) must reach the DocumentRoot: below a
    # directory they can search, not pytest's 0700 temporary root
    root = tempfile.mkdtemp(prefix="rpm-root-",
                            dir=reachable_parent("bbs-httpd"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def rpm_root(root, *args):
    return run(["rpm", "--root", root, "--dbpath", DBPATH] + list(args))


def test_bbs_660_02_installed_in_rhel_layout_routes_then_removal_leaves_nothing(
        rpms, sim, rhel_root):
    nodes = sim([("a", "bitbucket", "RUNNING"),
                 ("b", "bitbucket", "STOPPING")])
    port = free_port()
    p = params("200ms")
    body = site((BB, [(nodes.port("a"), p), (nodes.port("b"), p)]))
    etc = rhel_layout(rhel_root, port, body)
    r = rpm_root(rhel_root, "--initdb")
    assert r.returncode == 0, r.stderr
    before = tree(rhel_root)

    # --nodeps: the root's own rpm database knows no httpd package
    r = rpm_root(rhel_root, "--nodeps", "-i", rpms["rpm"])
    assert r.returncode == 0, r.stdout + r.stderr
    listed = rpm_root(rhel_root, "-ql", "mod_bbstatus").stdout.split()
    for path in LAYOUT:
        assert path in listed and os.path.isfile(rhel_root + path), path
    with open(os.path.join(etc, "conf.modules.d", "10-bbstatus.conf")) as f:
        assert f.read() == "LoadModule bbstatus_module " \
                           "modules/mod_bbstatus.so\n"
    with open(os.path.join(etc, "conf.d", "bbstatus.conf")) as f:
        example = f.read()
    assert "BBStatusRoute" in example and "SetHandler bbstatus" in example
    active = [ln for ln in example.splitlines()
              if ln.strip() and not ln.lstrip().startswith("#")]
    assert active == [], active

    server = Server(etc, port)
    try:
        r = run([server.httpd, "-d", etc, "-f", "conf/httpd.conf", "-M"])
        assert "bbstatus_module (shared)" in r.stdout, r.stdout + r.stderr
        server.start()

        def decided():
            recs = records(port)
            a = recs.get((BB, murl(nodes, "a")), {})
            b = recs.get((BB, murl(nodes, "b")), {})
            return a.get("decision") == "route" \
                and b.get("decision") == "block" and (a, b)
        a, b = wait_until(decided, 10, what="a routed, b blocked")
        assert a["in_rotation"] is True and b["in_rotation"] is False, (a, b)
        seen, answers = traffic(server, 20)
        assert set(seen) == {"a"}, answers
        assert all(s == 200 for s, _ in answers), answers
        status, _, page = server.get("/bbstatus?format=prometheus")
        assert status == 200 and b"bbstatus_member_in_rotation{" in page
    finally:
        server.stop()
    bad = [ln for ln in server.error_log().splitlines() if LEVEL_RE.search(ln)]
    assert bad == [], "\n".join(bad)

    r = rpm_root(rhel_root, "-e", "mod_bbstatus")
    assert r.returncode == 0, r.stdout + r.stderr
    left = [p for p in listed if os.path.lexists(rhel_root + p)
            and not os.path.isdir(rhel_root + p)]
    assert left == [], left
    # besides the package database and what httpd wrote while it ran,
    # the root is as before the install
    after = tree(rhel_root) - before
    ours = ("var/lib/rpm", "var/log/httpd/", "run/httpd/")
    assert [p for p in after if not p.startswith(ours)] == [], sorted(after)
