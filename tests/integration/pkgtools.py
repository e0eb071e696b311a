"""What the package tests (test_650_packages.py, test_660_rpm.py) share:
running a command with its output kept, and the module's version."""

import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def run(cmd, cwd=None, timeout=300, check=False, env=None):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                       timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    if check:
        assert r.returncode == 0, "%s: rc %d\n%s%s" % (
            " ".join(cmd), r.returncode, r.stdout, r.stderr)
    return r


def version():
    with open(os.path.join(REPO, "include", "bbs_keys.h")) as f:
        for line in f:
            if line.startswith("#define BBS_VERSION "):
                return line.split('"')[1]
    raise AssertionError("no BBS_VERSION in include/bbs_keys.h")
