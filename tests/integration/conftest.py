"""pytest glue for the apache2 integration tests.

* ``sim`` fixture: ``start(nodes=(), **kwargs) -> SimNodes`` (kwargs go to
  ``SimNodes.start``); every simulator is stopped at the end of the test,
  after the httpd instances.
* ``httpd_factory`` fixture: ``make(name=None, **kwargs) -> Httpd`` (kwargs
  go to ``Httpd``); every instance is stopped at the end of the test.
* ``env`` fixture: ``(sim, httpd_factory)``.
* After every test the error logs of all Httpd instances it used must not
  contain unexpected lines (see ``Httpd.unexpected_log_lines``); extra
  allowed regexes come from ``@pytest.mark.allow_log(r"...", ...)``.
  Lines logged while the test ran make the test fail; lines logged during
  teardown (e.g. at shutdown) make its teardown fail.
* On failure the error_log tail of every instance is attached to the report.
* ``-v`` / ``-vv`` (or env BBS_LOGLEVEL=debug|trace4|...) set the LogLevel
  of mod_bbstatus (``LogLevel info bbstatus:<level>``).
* A test parametrized over ``mpm`` gets instances of that MPM
  (``httpd.MPMS`` lists them); env BBS_MPM sets the MPM of every other
  instance (default event).  One parametrized over ``shape`` gets its
  configuration body in the main server or inside a <VirtualHost>
  (``httpd.SHAPES``).
* env BBS_MODULE: the module to load (default <repo>/.libs/mod_bbstatus.so);
  BBS_CORE_DUMPS=1: children may dump core into <ServerRoot>/cores.
"""

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
NODES = os.path.join(os.path.dirname(HERE), "nodes")
for p in (HERE, NODES):
    if p not in sys.path:
        sys.path.insert(0, p)

from bbs import module_loglevel  # noqa: E402
from httpd import Httpd, default_mpm, mpm_defect  # noqa: E402
from simclient import SimNodes  # noqa: E402

TAIL_LINES = 60


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "allow_log(*regexes): error_log lines matching one of the regexes "
        "are not treated as unexpected by the after-test log check")


def _allow_patterns(item):
    pats = []
    for mark in item.iter_markers("allow_log"):
        pats.extend(mark.args)
    return pats


def _used(item):
    """Httpd instances this test used: created during it, or pre-existing
    (e.g. from a module-scoped fixture) with their log positions at test
    start.  -> list of (httpd, log_offset, notes_offset)."""
    marks = getattr(item, "_bbs_marks", {})
    used = []
    for h in list(Httpd.instances):
        off, notes = marks.get(id(h), (0, 0))
        used.append((h, off, notes))
    return used


def _check(item, phase):
    allow = _allow_patterns(item)
    found = []
    checked = {}
    for h, off, notes in _used(item):
        bad = h.unexpected_log_lines(since=off, allow=allow,
                                     notes_since=notes)
        checked[id(h)] = (h.log_offset(), h.notes_offset())
        if bad:
            found.append(f"--- {h.name} ({h.error_log_path}):\n"
                         + "\n".join(bad))
    # the next check only looks at what comes after this one
    item._bbs_marks = {**getattr(item, "_bbs_marks", {}), **checked}
    if not found:
        return None
    return (f"unexpected error_log lines during {phase} (allow them with "
            f"@pytest.mark.allow_log(r'regex') if they are intended):\n"
            + "\n".join(found))


def _tails(item):
    out = []
    marks = getattr(item, "_bbs_start_marks", {})
    for h in list(Httpd.instances):
        if id(h) in marks and h.log_offset() <= marks[id(h)][0] \
                and h.notes_offset() <= marks[id(h)][1]:
            continue   # an instance of an earlier test, idle during this one
        text = h.error_log()
        if not text and not h.notes:
            continue
        lines = text.splitlines()[-TAIL_LINES:]
        body = "\n".join(lines)
        if h.notes:
            body += "\n--- apache2 command output / harness notes ---\n" \
                + "\n".join(h.notes)
        if h.cores():
            body += "\n--- core files ---\n" + "\n".join(h.cores())
        out.append((f"httpd {h.name} error_log (last {TAIL_LINES} lines of "
                    f"{h.error_log_path})", body))
    return out


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    # instances left over from earlier tests (module-scoped fixtures):
    # only their lines from now on belong to this test
    item._bbs_marks = {id(h): (h.log_offset(), h.notes_offset())
                       for h in Httpd.instances}
    item._bbs_start_marks = dict(item._bbs_marks)
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)
    if rep.when == "call" and rep.passed:
        msg = _check(item, "the test")
        if msg:
            rep.outcome = "failed"
            rep.longrepr = msg
    elif rep.when == "teardown" and rep.passed and not getattr(
            item, "_bbs_failed", False):
        msg = _check(item, "teardown")
        if msg:
            rep.outcome = "failed"
            rep.longrepr = msg
    if rep.failed:
        item._bbs_failed = True
        if rep.when != "teardown":
            for title, text in _tails(item):
                rep.sections.append((title, text))
    if rep.when == "teardown":
        # forget instances that are stopped: they cannot log any more
        Httpd.instances[:] = [h for h in Httpd.instances if h.is_running()]


@pytest.fixture
def sim(tmp_path):
    """``start(nodes=(), **kwargs) -> SimNodes``; every simulator is
    stopped at the end of the test."""
    made = []

    def start(nodes=(), **kwargs):
        kwargs.setdefault("tmpdir", str(tmp_path))
        nodes = SimNodes.start(nodes=list(nodes), **kwargs)
        made.append(nodes)
        return nodes

    yield start
    for nodes in made:
        nodes.stop()


@pytest.fixture
def httpd_factory(sim, tmp_path, request):
    """``make(name=None, **kwargs) -> Httpd``; each instance gets its own
    ServerRoot below tmp_path and is stopped after the test.  It depends
    on ``sim`` so that httpd stops before the nodes do: a node that
    vanishes under a running checker would make mod_proxy log connect
    errors during teardown."""
    made = []
    level = module_loglevel(request.config)

    # a test parametrized over "mpm" runs its instances with that MPM,
    # one over "shape" puts its body where that shape says (httpd.SHAPES)
    cs_params = getattr(getattr(request.node, "callspec", None), "params",
                        {})
    mpm = cs_params.get("mpm")
    shape = cs_params.get("shape")
    broken = mpm_defect(mpm or default_mpm())
    if broken:
        pytest.skip(broken)

    def make(name=None, **kwargs):
        name = name or f"httpd{len(made)}"
        if mpm:
            kwargs.setdefault("mpm", mpm)
        if shape:
            kwargs.setdefault("shape", shape)
        if any(h.name == name for h in made):
            raise ValueError(f"httpd_factory: name {name!r} already used")
        kwargs.setdefault("module_loglevel", level)
        h = Httpd(tmp_path / name, name=name, **kwargs)
        made.append(h)
        return h

    yield make
    errors = []
    for h in made:
        try:
            h.stop()
        except Exception as e:  # keep stopping the others
            errors.append(f"{h.name}: {e!r}")
    if errors:
        raise RuntimeError("stopping httpd failed: " + "; ".join(errors))


@pytest.fixture
def env(sim, httpd_factory):
    """``(sim, httpd_factory)``."""
    return sim, httpd_factory
