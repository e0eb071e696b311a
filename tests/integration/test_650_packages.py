"""Release artefacts: `make deb` from a clean clone gives a package that
lintian accepts, that installs, enables and removes itself the way Debian's
libapache2-mod-* packages do, and `make dist` gives a reproducible tarball
that builds and passes the unit tests elsewhere.

The package tests install into this machine's /etc/apache2 and
/usr/lib/apache2/modules, so they run only under `make check-packages`
(env BBS_PACKAGE_TESTS=1), as root with the tools of `scripts/deps.sh deb`;
CI runs them (.ci/run). They never
start or stop the system's apache2: a policy-rc.d that refuses every
service action is in place while dpkg runs, and everything is put back
afterwards (policy-rc.d, mods-enabled links a2enmod added for the
dependencies, a2enmod's state files)."""

import fcntl
import os
import re
import shutil
import tarfile
import time

import pytest

from bbs import make_cert
from pkgtools import REPO, run, version


PKG = "libapache2-mod-bbstatus"
MODULES_DIR = "/usr/lib/apache2/modules"
MODS_AVAILABLE = "/etc/apache2/mods-available"
MODS_ENABLED = "/etc/apache2/mods-enabled"
A2_STATE = "/var/lib/apache2"
POLICY_RC_D = "/usr/sbin/policy-rc.d"
SYSTEM_PIDFILE = "/var/run/apache2/apache2.pid"
TOOLS = ("git", "dpkg-buildpackage", "dh", "dh_apache2", "lintian",
         "dpkg", "a2query", "apache2ctl")
# Tests of this file on other checkouts of the machine would fight over
# dpkg and policy-rc.d; they take turns.
LOCK = "/run/lock/mod_bbstatus-package-tests.lock"


def dpkg_with_lock_wait(args, deadline_s=180):
    """dpkg refuses at once while apt or dpkg runs elsewhere on the
    machine; wait for the lock, bounded."""
    deadline = time.monotonic() + deadline_s
    while True:
        r = run(["dpkg"] + args)
        locked = r.returncode != 0 and "lock" in r.stderr.lower()
        if not locked or time.monotonic() > deadline:
            return r
        time.sleep(1)


def clean_clone(tmp):
    clone = os.path.join(tmp, "clone")
    run(["git", "clone", "-q", REPO, clone], check=True)
    return clone


def tree(path):
    """{relative path: symlink target or None} of everything under path."""
    out = {}
    for root, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(root, n)
            out[os.path.relpath(p, path)] = (
                os.readlink(p) if os.path.islink(p) else None)
    return out


def package_status():
    r = run(["dpkg-query", "-W", "-f=${Status}", PKG])
    return r.stdout.strip() if r.returncode == 0 else ""


# ---- the package ---------------------------------------------------------

@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    if os.environ.get("BBS_PACKAGE_TESTS") != "1":
        pytest.skip("installs a package on this machine: make check-packages "
                    "runs it, as root")
    if os.geteuid() != 0:
        pytest.fail("the package tests install a package: run them as root")
    missing = [t for t in TOOLS if not shutil.which(t)]
    if missing:
        pytest.fail("missing %s: bash scripts/deps.sh deb" % " ".join(missing))
    tmp = str(tmp_path_factory.mktemp("deb"))
    clone = clean_clone(tmp)
    r = run(["make", "--no-print-directory", "deb"], cwd=clone, timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    out = os.path.join(clone, "build", "deb")
    arch = run(["dpkg", "--print-architecture"], check=True).stdout.strip()
    name = "%s_%s-1_%s" % (PKG, version(), arch)
    path = os.path.join(out, name + ".deb")
    assert os.path.isfile(path), sorted(os.listdir(out))
    return {"deb": path, "changes": os.path.join(out, name + ".changes"),
            "clone": clone}


def test_bbs_650_01_lintian_has_no_error_or_warning(deb):
    r = run(["lintian", "--fail-on", "error,warning", deb["changes"]])
    tags = [ln for ln in r.stdout.splitlines() if ln[:2] in ("E:", "W:")]
    assert r.returncode == 0 and not tags, r.stdout + r.stderr
    # Depends from the substitution variables: the Apache module API and
    # jansson's shared library, no hand-written pins
    depends = run(["dpkg-deb", "-f", deb["deb"], "Depends"],
                  check=True).stdout
    names = [d.strip().split()[0] for d in depends.split(",")]
    assert "apache2-api-20120211" in names, depends
    assert any(n.startswith("libjansson") for n in names), depends
    with open(os.path.join(deb["clone"], "debian", "control")) as f:
        control = f.read()
    assert "${shlibs:Depends}" in control and "${misc:Depends}" in control


@pytest.fixture
def machine(tmp_path):
    """Exclusive use of dpkg and /etc/apache2 for this test, with a
    policy-rc.d that logs and refuses every service action; puts back
    everything it and the package changed."""
    lock = open(LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    so = os.path.join(MODULES_DIR, "mod_bbstatus.so")
    try:
        if package_status():
            pytest.skip("%s is installed on this machine (%s): not touching "
                        "it" % (PKG, package_status()))
        for p in (so, os.path.join(MODS_AVAILABLE, "bbstatus.load"),
                  os.path.join(MODS_AVAILABLE, "bbstatus.conf")):
            if os.path.lexists(p):
                pytest.skip("%s is there and belongs to no package (make "
                            "install?): run make uninstall first" % p)
        enabled_before = tree(MODS_ENABLED)
        state_before = tree(A2_STATE)
        # the machine's own policy-rc.d is moved aside, untouched, and
        # moved back afterwards
        saved = POLICY_RC_D + ".mod_bbstatus-test"
        had_policy = os.path.lexists(POLICY_RC_D)
        if had_policy:
            os.rename(POLICY_RC_D, saved)
        log = tmp_path / "policy-rc.d.log"
        with open(POLICY_RC_D, "w") as f:
            f.write('#!/bin/sh\necho "$*" >> %s\nexit 101\n' % log)
        os.chmod(POLICY_RC_D, 0o755)
        try:
            yield {"policy_log": log}
        finally:
            if package_status():
                dpkg_with_lock_wait(["-P", PKG])
            os.unlink(POLICY_RC_D)
            if had_policy:
                os.rename(saved, POLICY_RC_D)
            # a2enmod enabled the modules bbstatus.load depends on, and
            # records what a maintainer script enabled: undo both
            for base, before in ((MODS_ENABLED, enabled_before),
                                 (A2_STATE, state_before)):
                for rel in sorted(set(tree(base)) - set(before),
                                  reverse=True):
                    p = os.path.join(base, rel)
                    if os.path.isdir(p) and not os.path.islink(p):
                        os.rmdir(p)
                    else:
                        os.unlink(p)
            assert tree(MODS_ENABLED) == enabled_before
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def system_pid():
    try:
        with open(SYSTEM_PIDFILE) as f:
            return f.read().strip()
    except OSError:
        return None


def configtest(*extra):
    return run(["apache2ctl", "-t"] + list(extra))


def test_bbs_650_02_install_enables_then_remove_and_purge_leave_nothing(
        deb, machine, tmp_path):
    examples = "/usr/share/doc/%s/examples" % PKG
    pid_before = system_pid()
    r = configtest()
    assert r.returncode == 0, "system config broken before the test: " \
        + r.stderr

    r = dpkg_with_lock_wait(["-i", deb["deb"]])
    assert r.returncode == 0, r.stdout + r.stderr
    assert package_status() == "install ok installed"

    # enabled on a fresh install, as Debian's module packages are
    # (dh_apache2's default), with the modules it depends on
    r = run(["a2query", "-m", "bbstatus"])
    assert r.returncode == 0 and "enabled" in r.stdout, r.stdout + r.stderr
    for m in ("bbstatus", "proxy", "proxy_http", "proxy_balancer",
              "proxy_hcheck", "slotmem_shm", "lbmethod_byrequests"):
        assert os.path.islink(os.path.join(MODS_ENABLED, m + ".load")), m

    # the postinst asked for a restart; policy-rc.d refused it, and the
    # system's apache2 was neither started nor stopped
    log = machine["policy_log"].read_text() \
        if machine["policy_log"].exists() else ""
    assert "apache2" in log, "invoke-rc.d never asked: %r" % log
    assert system_pid() == pid_before

    # the installed module loads with Debian's config and a shipped example
    r = configtest()
    assert r.returncode == 0 and "Syntax OK" in r.stderr, r.stderr
    # each example needs the modules its first lines say (a2enmod ...
    # headers ssl ...): loaded for this check only, not enabled on the
    # machine; its certificate paths point at a throwaway certificate
    loads = []
    for m in ("headers", "ssl", "socache_shmcb", "rewrite",
              "proxy_wstunnel"):
        if not os.path.islink(os.path.join(MODS_ENABLED, m + ".load")):
            loads += ["-c", "LoadModule %s_module "
                      "/usr/lib/apache2/modules/mod_%s.so" % (m, m)]
    crt, key = make_cert("openssl", str(tmp_path), "example",
                         "example.com", dns="example.com", ca=False)
    names = sorted(n for n in os.listdir(os.path.join(REPO, "conf.d"))
                   if n.endswith(".conf.example"))
    for name in names:
        with open(os.path.join(examples, name)) as f:
            text = f.read()
        text = re.sub(r"SSLCertificateFile \S+", "SSLCertificateFile " + crt,
                      text)
        text = re.sub(r"SSLCertificateKeyFile \S+",
                      "SSLCertificateKeyFile " + key, text)
        copy = tmp_path / name
        copy.write_text(text)
        r = configtest(*loads, "-c", "Include %s" % copy)
        assert r.returncode == 0 and "Syntax OK" in r.stderr, \
            name + ": " + r.stderr
    r = run(["apache2ctl", "-M"])
    assert "bbstatus_module (shared)" in r.stdout, r.stdout + r.stderr

    listed = run(["dpkg", "-L", PKG], check=True).stdout.split()
    files = [p for p in listed
             if os.path.isfile(p) or os.path.islink(p)]
    conffiles = [ln.split()[0] for ln in run(
        ["dpkg-query", "-W", "-f=${Conffiles}", PKG],
        check=True).stdout.splitlines() if ln.strip()]
    assert os.path.join(MODULES_DIR, "mod_bbstatus.so") in files
    # every product's example, and the notes they point to
    for name in names:
        path = "%s/%s" % (examples, name)
        # dh_compress gzips documentation over 4 KiB
        assert path in files or path + ".gz" in files, name
    path = "/usr/share/doc/%s/atlassian-products.md" % PKG
    assert path in files or path + ".gz" in files, files
    assert sorted(conffiles) == [os.path.join(MODS_AVAILABLE, n) for n in
                                 ("bbstatus.conf", "bbstatus.load")]

    def no_enabled_link():
        left = [n for n in os.listdir(MODS_ENABLED)
                if n.startswith("bbstatus.")]
        assert not left, left

    # remove: disabled, every file gone but the conffiles
    r = dpkg_with_lock_wait(["-r", PKG])
    assert r.returncode == 0, r.stdout + r.stderr
    no_enabled_link()
    assert run(["a2query", "-m", "bbstatus"]).returncode != 0
    left = [p for p in files if os.path.lexists(p) and p not in conffiles]
    assert not left, left
    r = configtest()
    assert r.returncode == 0, r.stderr

    # purge: the conffiles and a2enmod's record of the module go too
    r = dpkg_with_lock_wait(["-P", PKG])
    assert r.returncode == 0, r.stdout + r.stderr
    assert package_status() == ""
    no_enabled_link()
    left = [p for p in files if os.path.lexists(p)]
    assert not left, left
    left = [rel for rel in tree(A2_STATE)
            if os.path.basename(rel) == "bbstatus"]
    assert not left, left
    assert system_pid() == pid_before


# ---- the source tarball --------------------------------------------------

def test_bbs_650_03_dist_is_reproducible_and_builds_elsewhere(tmp_path):
    if not shutil.which("git"):
        pytest.skip("no git")
    clone = clean_clone(str(tmp_path))
    name = "mod_bbstatus-%s" % version()
    tgz = os.path.join(clone, "build", name + ".tar.gz")

    r = run(["make", "--no-print-directory", "dist"], cwd=clone)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(tgz, "rb") as f:
        first = f.read()
    # what the checkout looks like must not matter: other mtimes, another
    # umask, a second clone elsewhere
    later = time.time() + 3600
    for root, _, names in os.walk(clone):
        if "/.git" not in root + "/":
            for n in names:
                os.utime(os.path.join(root, n), (later, later))
    os.remove(tgz)
    clone2 = os.path.join(str(tmp_path), "clone2")
    run(["git", "clone", "-q", clone, clone2], check=True)
    for c in (clone, clone2):
        r = run(["sh", "-c", "umask 077 && make --no-print-directory dist"],
                cwd=c)
        assert r.returncode == 0, r.stdout + r.stderr
        with open(os.path.join(c, "build", name + ".tar.gz"), "rb") as f:
            assert f.read() == first, "make dist differs in " + c

    # gzip -n: no name, no time in the gzip header
    assert first[:2] == b"\x1f\x8b" and first[4:8] == b"\0\0\0\0"
    commit_time = int(run(["git", "log", "-1", "--format=%ct"], cwd=clone,
                          check=True).stdout)
    tracked = run(["git", "ls-tree", "-r", "--name-only", "HEAD"],
                  cwd=clone, check=True).stdout.split()
    with tarfile.open(tgz) as tf:
        members = tf.getmembers()
    for m in members:
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "root", "root"), \
            m.name
        assert m.mtime == commit_time, m.name
        assert m.name == name or m.name.startswith(name + "/"), m.name
    files = [m.name[len(name) + 1:] for m in members if m.isfile()]
    # the committed tree, in git's sorted order, without CI plumbing
    assert files == [p for p in tracked
                     if not p.startswith(".ci/") and p != ".gitignore"]
    for need in ("Makefile", "apxs.mk", "mod_bbstatus.c", "mod_bbstatus.map",
                 "include/bbs_keys.h", "conf.d/bbstatus.load",
                 "conf.d/bbstatus.conf", "README.md", "LICENSE", "NOTICE",
                 "CHANGES", "debian/control", "debian/rules"):
        assert need in files, need
    assert any(f.startswith("src/") and f.endswith(".c") for f in files)

    # unpacked elsewhere, without git, it builds and passes the unit tests
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with tarfile.open(tgz) as tf:
        tf.extractall(elsewhere)
    src = str(elsewhere / name)
    assert not os.path.exists(os.path.join(src, ".git"))
    r = run(["make", "--no-print-directory", "all"], cwd=src, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert os.path.getsize(os.path.join(src, ".libs",
                                        "mod_bbstatus.so")) > 10000
    r = run(["make", "--no-print-directory", "check-unit"], cwd=src,
            timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "100%" in r.stdout, r.stdout[-2000:]
