"""Install and first run: `make install DESTDIR=...` lays out the files a
Debian administrator expects, and `make demo` / `make demo-stop` work end to
end on loopback."""

import os
import re
import subprocess


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
