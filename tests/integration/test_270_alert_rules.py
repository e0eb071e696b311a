"""The Prometheus alerting rules of contrib/prometheus: promtool accepts
them and their unit tests pass, and every metric name, label and label
value the rules and their tests use is one a running httpd with the module
really exports on /bbstatus?format=prometheus, a balancer always with its
vhost. A renamed metric or label fails here, not silently in an operator's
Prometheus; so does a check time, hcinterval or decision count read in
other units or as another type than exported."""

import os
import re
import shutil
import subprocess
import time

import pytest
import yaml

from bbs import member_url, params, site, wait_members
from httpd import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
RULES_DIR = os.path.join(REPO, "contrib", "prometheus")
RULES = os.path.join(RULES_DIR, "bbstatus-rules.yml")
RULE_TESTS = os.path.join(RULES_DIR, "bbstatus-rules.test.yml")
PROMTOOL = "/usr/bin/promtool"
# what Prometheus adds to every scraped series
TARGET_LABELS = {"job", "instance"}
# a balancer is named by its virtual host too: the same <Proxy> file in two
# virtual hosts makes two balancers of one name
BALANCER_LABELS = {"vhost", "balancer", "member"}
# "name:port", or the ServerName alone where no port is set
VHOST_RE = re.compile(r"^[^\s:\"]+(?::\d+)?$")
# the series that say when a member was checked, how often it should be and
# how often its decision changed, and how the rules must read them
CHECKED = "bbstatus_member_checked_timestamp_seconds"
HCINTERVAL = "bbstatus_member_hcinterval_seconds"
CHANGES = "bbstatus_member_decision_changes_total"
COUNTER_FUNCS_RE = re.compile(r"\b(?:increase|rate|irate|resets)\s*\(\s*"
                              r"(bbstatus_[a-z_]+)")

SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
SELECTOR_RE = re.compile(r"\b(bbstatus_[a-z_]+)\b(\{[^}]*\})?")
MATCHER_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING_RE = re.compile(r"\b(?:by|without|on|ignoring|group_left|"
                         r"group_right)\s*\(([^)]*)\)")
TEMPLATE_LABEL_RE = re.compile(r"\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)")


def promtool(*args):
    if not os.path.exists(PROMTOOL):
        pytest.fail("no promtool: bash scripts/deps.sh check (Debian's "
                    "prometheus package)")
    return subprocess.run([PROMTOOL, *args], cwd=RULES_DIR,
                          capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def rules():
    return [r for g in load(RULES)["groups"] for r in g["rules"]]


def test_promtool_checks_the_rules_and_their_unit_tests_pass():
    r = promtool("check", "rules", os.path.basename(RULES))
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    r = promtool("test", "rules", os.path.basename(RULE_TESTS))
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_every_alert_has_a_unit_test_that_fires_it():
    alerts = {r["alert"] for r in rules() if "alert" in r}
    fired, quiet = set(), set()
    for t in load(RULE_TESTS)["tests"]:
        for a in t.get("alert_rule_test", []):
            (fired if a.get("exp_alerts") else quiet).add(a["alertname"])
    assert alerts - fired == set(), "alerts no test fires"
    assert alerts - quiet == set(), "alerts no test shows quiet"
    assert fired | quiet <= alerts, "tests of alerts that do not exist"


# --- what the module exports ----------------------------------------------

def scrape(h):
    """{metric: {"labels": {frozenset of label names}, "values": {label:
    set of values}, "type": "gauge" or "counter", "samples": [({label:
    value}, float)]}} of one /bbstatus?format=prometheus, and the time it
    was taken."""
    status, hdrs, body = h.get("/bbstatus?format=prometheus")
    assert status == 200, body[:300]
    at = time.time()
    out, types = {}, {}
    for line in body.decode("utf-8").splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        if not line or line.startswith("#"):
            continue
        m = SAMPLE_RE.match(line)
        assert m, line
        name, labels = m.group(1), LABEL_RE.findall(m.group(2) or "")
        e = out.setdefault(name, {"labels": set(), "values": {},
                                  "type": types.get(name), "samples": []})
        e["labels"].add(frozenset(k for k, _ in labels))
        for k, v in labels:
            e["values"].setdefault(k, set()).add(v)
        e["samples"].append((dict(labels), float(m.group(3))))
    return out, at


@pytest.fixture
def exported(env):
    """A live scrape that shows every value the rules match on: a balancer
    with RUNNING, STARTING, MAINTENANCE and STOPPING members (route,
    standby, block) and one whose only member refuses (panic); every
    member checked every 200 ms. With the time of the scrape."""
    start_nodes, make = env
    nodes = start_nodes([("r", "bitbucket", "RUNNING"),
                         ("st", "bitbucket", "STARTING"),
                         ("mt", "bitbucket", "MAINTENANCE"),
                         ("x", "bitbucket", "STOPPING")])
    p = params("200ms")
    gone = member_url(free_port())
    h = make()
    h.start(site(("balancer://bb",
                  [(nodes.port(n), p) for n in ("r", "st", "mt", "x")]),
                 ("balancer://pp", [(gone, p)])))
    want = {"r": "route", "st": "standby", "mt": "standby", "x": "block"}
    wait_members(h, {member_url(nodes.port(n)): (
        lambda m, d=d: m.get("decision") == d and (m.get("checks") or 0) >= 1)
        for n, d in want.items()}, 15, "bb's members decided")
    wait_members(h, {gone: lambda m: m.get("decision") == "panic"}, 15,
                 "pp in panic", balancer="balancer://pp")
    return scrape(h)


def used_in_rules():
    """[(alert, expr, [(metric, {label: (op, value)})], grouping labels,
    template labels)] of every rule."""
    out = []
    for r in rules():
        expr = r["expr"]
        selectors = [(name, {k: (op, v) for k, op, v in
                             MATCHER_RE.findall(braces or "")})
                     for name, braces in SELECTOR_RE.findall(expr)]
        grouping = {x.strip() for g in GROUPING_RE.findall(expr)
                    for x in g.split(",") if x.strip()}
        templates = set()
        for text in (r.get("annotations") or {}).values():
            templates |= set(TEMPLATE_LABEL_RE.findall(text))
        out.append((r.get("alert"), expr, selectors, grouping, templates))
    return out


@pytest.mark.allow_log(r"BBS0030")
def test_rules_and_their_tests_use_what_the_module_exports(exported):
    exported, _ = exported
    assert exported, "the scrape is empty"
    rules_use_what_is_exported(exported)
    rule_tests_feed_series_as_exported(exported)


def rules_use_what_is_exported(exported):
    for alert, expr, selectors, grouping, templates in used_in_rules():
        assert selectors, f"{alert}: no bbstatus_ metric in {expr!r}"
        names = set()
        for name, matchers in selectors:
            assert name in exported, \
                f"{alert}: {name} is not exported ({sorted(exported)})"
            e = exported[name]
            label_names = set().union(*e["labels"])
            names |= label_names
            for k, (op, v) in matchers.items():
                assert k in label_names, f"{alert}: {name} has no label {k}"
                if op == "=":
                    assert v in e["values"][k], \
                        f"{alert}: {name}{{{k}={v!r}}} never seen in a " \
                        f"scrape: {sorted(e['values'][k])}"
        for k in grouping:
            assert k in names | TARGET_LABELS, \
                f"{alert}: groups by {k}, which no metric of it has"
        for g in GROUPING_RE.findall(expr):
            keys = {x.strip() for x in g.split(",") if x.strip()}
            if keys & BALANCER_LABELS:
                assert "vhost" in keys, \
                    f"{alert}: ({g}) names a balancer without its vhost"
        for name in COUNTER_FUNCS_RE.findall(expr):
            assert exported[name]["type"] == "counter", \
                f"{alert}: a counter's function on {name}, a " \
                f"{exported[name]['type']}"
        # an aggregation keeps only its by() labels for the annotations
        have = grouping if re.search(r"\b(count|sum|max|min|avg) by\b",
                                     expr) else names | TARGET_LABELS
        for k in templates:
            assert k in have, f"{alert}: its annotations use $labels.{k}, " \
                              f"which the alert does not carry ({sorted(have)})"


def rule_tests_feed_series_as_exported(exported):
    fed = 0
    for t in load(RULE_TESTS)["tests"]:
        for s in t["input_series"]:
            m = re.match(r"^([a-z_]+)\{(.*)\}$", s["series"])
            assert m, s["series"]
            name, labels = m.group(1), dict(LABEL_RE.findall(m.group(2)))
            assert name in exported, f"{name} is not exported"
            keys = set(labels) - TARGET_LABELS
            assert frozenset(keys) in exported[name]["labels"], \
                f"{s['series']}: the module exports {name} with " \
                f"{[sorted(x) for x in exported[name]['labels']]}"
            assert TARGET_LABELS <= set(labels), \
                f"{s['series']}: a scraped series has job and instance"
            for k in keys - BALANCER_LABELS:
                assert labels[k] in exported[name]["values"][k], \
                    f"{s['series']}: {k}={labels[k]!r} never seen in a scrape"
            assert labels["balancer"].startswith("balancer://")
            assert VHOST_RE.match(labels["vhost"]), s["series"]
            fed += 1
        # an alert on a balancer or a member names its virtual host
        for a in t.get("alert_rule_test", []):
            for e in a.get("exp_alerts") or []:
                assert "vhost" in e["exp_labels"], \
                    f"{a['alertname']} at {a['eval_time']}: no vhost"
    assert fed >= 10
    for name, e in exported.items():
        assert e["values"]["vhost"], name
        for v in e["values"]["vhost"]:
            assert VHOST_RE.match(v), f"{name}: vhost={v!r}"


@pytest.mark.allow_log(r"BBS0030")
def test_rules_read_the_check_series_as_exported(exported):
    """ChecksStopped compares the age of the last check, seconds of Unix
    time, with a multiple of hcinterval in seconds and leaves out a
    timestamp of 0; Flapping counts the increase of a counter."""
    exported, at = exported
    exprs = {r["alert"]: r["expr"] for r in rules() if "alert" in r}
    stopped = exprs["BBStatusChecksStopped"]
    assert "time()" in stopped and HCINTERVAL in stopped, stopped
    assert re.search(CHECKED + r"\s*>\s*0\b", stopped), stopped
    assert re.search(r"\bincrease\(\s*" + CHANGES + r"\[",
                     exprs["BBStatusMemberFlapping"]), exprs
    kinds = {n: exported[n]["type"] for n in (CHECKED, HCINTERVAL, CHANGES)}
    assert kinds == {CHECKED: "gauge", HCINTERVAL: "gauge",
                     CHANGES: "counter"}, kinds
    by_member = {}
    for name in (CHECKED, HCINTERVAL, CHANGES):
        assert exported[name]["labels"] == {frozenset(BALANCER_LABELS)}, \
            (name, exported[name]["labels"])
        for labels, v in exported[name]["samples"]:
            key = tuple(sorted(labels.items()))
            by_member.setdefault(key, {})[name] = v
    assert len(by_member) == 5, by_member
    for key, v in by_member.items():
        # every member checked: seconds of Unix time, a moment ago;
        # hcinterval=200ms in seconds; pending -> something at least
        assert at - 30 < v[CHECKED] <= at + 1, (key, v, at)
        assert v[HCINTERVAL] == pytest.approx(0.2), (key, v)
        assert v[CHANGES] >= 1 and v[CHANGES] == int(v[CHANGES]), (key, v)
