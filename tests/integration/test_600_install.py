"""Install and first run: `make install DESTDIR=...` lays out the files a
Debian administrator expects, and `make demo` / `make demo-stop` work end to
end on loopback."""

import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def make(*args, timeout=180):
    return subprocess.run(["make", "--no-print-directory", "-C", REPO]
                          + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def libexecdir():
    return subprocess.run(["apxs", "-q", "LIBEXECDIR"], capture_output=True,
                          text=True, check=True).stdout.strip()


def test_bbs_600_01_install_with_destdir_lays_out_module_and_debian_conf(
        tmp_path):
    stage = tmp_path / "stage"
    r = make("install", "DESTDIR=%s" % stage)
    assert r.returncode == 0, r.stdout + r.stderr
    so = stage / libexecdir().lstrip("/") / "mod_bbstatus.so"
    assert so.is_file() and so.stat().st_size > 10000
    mods = stage / "etc/apache2/mods-available"
    if os.path.isdir("/etc/apache2/mods-available"):
        load = (mods / "bbstatus.load").read_text()
        assert re.search(r"^LoadModule bbstatus_module %s/mod_bbstatus\.so$"
                         % re.escape(libexecdir()), load, re.M), load
        # a2enmod enables what the module works with
        dep = re.search(r"^# Depends: (.*)$", load, re.M)
        assert dep, load
        for m in ("proxy", "proxy_http", "proxy_balancer", "proxy_hcheck",
                  "slotmem_shm", "lbmethod_byrequests"):
            assert m in dep.group(1).split()
        conf = (mods / "bbstatus.conf").read_text()
        assert "SetHandler bbstatus" in conf and "Require local" in conf
        assert "a2enmod bbstatus" in r.stdout
    else:
        assert "LoadModule bbstatus_module" in r.stdout
    # nothing else is written outside the stage
    names = sorted(str(p.relative_to(stage)) for p in stage.rglob("*")
                   if p.is_file())
    assert all(n.endswith(("mod_bbstatus.so", "bbstatus.load",
                           "bbstatus.conf")) for n in names), names

    r = make("uninstall", "DESTDIR=%s" % stage)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not [p for p in stage.rglob("*") if p.is_file()]


def test_bbs_600_02_demo_shows_a_node_leave_and_rejoin_then_stops():
    try:
        r = make("demo", timeout=240)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        # the walk, step by step, with decisions and reasons
        steps = re.findall(r"^== (.*)$", out, re.M)
        assert len(steps) >= 6, out
        assert re.search(r"^node2\s+block\s+STOPPING\s+503\s+out\s+state "
                         r"STOPPING \(HTTP 503\) is not in BBStatusRoute",
                         out, re.M), out
        assert re.search(r"^node2\s+block\s+-\s+-\s+out\s+connection "
                         r"refused", out, re.M), out
        assert re.search(r"^node2\s+standby\s+STARTING\s+503\s+out", out,
                         re.M), out
        assert re.search(r"^node2\s+route\s+RUNNING\s+200\s+in", out, re.M)
        assert "backup client polls of /mvc/maintenance answered: 20/20" \
            in out
        # while node2 was out, no request reached it
        for line in re.findall(r"== node2 (?:STOPPING|stopped).*\n(?:.*\n){4}"
                               r"\s+30 requests .* went to: (.*)", out):
            assert "node2" not in line, line
        urls = re.findall(r"(http://127\.0\.0\.1:\d+)/bbstatus\b", out)
        assert urls, out
        # what the demo left running answers
        import urllib.request
        with urllib.request.urlopen(urls[0] + "/bbstatus?format=json",
                                    timeout=5) as resp:
            assert resp.status == 200
            assert b'"module": "mod_bbstatus"' in resp.read()
        demo = os.path.join(REPO, "build", "demo")
        httpd_pid = int(open(os.path.join(demo, "run", "httpd.pid")).read())
        nodes_pid = int(open(os.path.join(demo, "nodes.pid")).read())
    finally:
        stop = make("demo-stop", timeout=60)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    for pid in (httpd_pid, nodes_pid):
        try:
            with open("/proc/%d/stat" % pid) as f:
                state = f.read().split(")")[-1].split()[0]
        except OSError:
            continue
        assert state == "Z", "pid %d still running after demo-stop" % pid
    log = open(os.path.join(demo, "logs", "error_log")).read()
    assert not re.search(r"\[[a-z_]+:(error|crit|alert|emerg)\]|Segmentation",
                         log), log


def test_bbs_600_03_demo_works_from_a_checkout_under_a_0700_directory(
        tmp_path):
    """root's home is mode 0700: httpd's children (User nobody) cannot
    search it. A clone of this checkout's HEAD in such a directory builds
    itself and passes the demo test there."""
    if not os.path.exists(os.path.join(REPO, ".git")):
        pytest.skip("not a git checkout: nothing to clone")
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o700)
    clone = home / "mod_bbstatus"
    r = subprocess.run(["git", "clone", "-q", "--no-hardlinks", REPO,
                        str(clone)], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    demo = clone / "build" / "demo"
    try:
        r = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "tests/integration/test_600_install.py", "-k",
             "test_bbs_600_02"], cwd=str(clone), capture_output=True,
            text=True, timeout=600, stdin=subprocess.DEVNULL)
        out = r.stdout + r.stderr
        assert r.returncode == 0 and re.search(r"\b1 passed\b", out), out
    finally:
        # the demo root outside the clone, if the demo made one
        if os.path.islink(demo):
            real = os.path.realpath(demo)
            subprocess.run(["make", "--no-print-directory", "-C", str(clone),
                            "demo-stop"], capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
            shutil.rmtree(real, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="children run as the same "
                    "user unless httpd starts as root")
def test_bbs_600_04_demo_that_cannot_work_says_why(tmp_path):
    """The demo's ServerRoot forced into a 0700 directory, as it was before
    it moved out of the checkout: the demo gives up and prints the error
    log's AH00035 line and the 403, not only that it timed out."""
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o700)
    code = (
        "import os, sys\n"
        "sys.path.insert(0, %r)\n"
        "sys.argv = ['demo.py']\n"
        "import demo\n"
        "demo.DEMO = %r\n"
        "def inside():\n"
        "    os.makedirs(demo.DEMO, exist_ok=True)\n"
        "    return demo.DEMO\n"
        "demo.external_root = inside\n"
        "demo.main()\n" % (os.path.join(REPO, "scripts"), str(home / "demo")))
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        subprocess.run([sys.executable, "-c", code.replace(
            "['demo.py']", "['demo.py', '--stop']")], capture_output=True,
            timeout=60, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "gave up waiting for the first checks" in out, out
    assert "GET /bbstatus answered 403" in out, out
    assert re.search(r"the error log says:\n.*AH00035: access to /bbstatus "
                     r"denied .* search permissions are missing", out), out
