"""The Prometheus alert rules (deploy/prometheus/alerts.yml): valid (`promtool check rules`), each one fires
and stays quiet where it should (`promtool test rules` on deploy/prometheus/tests/), and they only name
metrics the services export (shared/metrics.py and prometheus_client's process collector).

promtool comes from Debian's prometheus package (`make promtool`, a prerequisite of `make test`). Under
`make test` (REQUIRE_PROMTOOL=1) or on CI a missing promtool fails these tests instead of skipping them.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import shared.metrics  # noqa: F401  (registers the metrics every service has)
from shared.registry import NAMES

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
RULE_TESTS = sorted((PROMETHEUS / "tests").glob("*.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("REQUIRE_PROMTOOL") or os.environ.get("CI"):
            pytest.fail("promtool is missing: `make promtool` installs it (Debian's prometheus package)")
        pytest.skip("promtool is not installed (`make promtool`); `make test` requires it")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, cwd=PROMETHEUS.parent)


def _rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules(promtool: str) -> None:
    done = _run(promtool, "check", "rules", str(ALERTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_rule_tests_pass(promtool: str) -> None:
    assert RULE_TESTS, "no promtool rule tests in deploy/prometheus/tests/"
    done = _run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in _rules() if "alert" in rule}
    assert alerts - firing == set(), "alerts without a case where they fire"
    assert alerts - quiet == set(), "alerts without a case where they stay quiet"
    assert (firing | quiet) - alerts == set(), "tests of alerts that do not exist"


_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
             "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (good enough for the expressions we write)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    names = set(re.findall(r"(?<![\w:.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", expr))
    return {n for n in names if n.lower() not in _KEYWORDS}


def exported_names() -> set[str]:
    """Every sample name /metrics can show: the families registered by shared/metrics.py and the services'
    own metrics modules (importing them registers them) and the default collectors (process_*), plus
    Prometheus' own `up`."""
    for name in NAMES:
        try:
            importlib.import_module(f"services.{name}.metrics")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.{name}.metrics":
                raise
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count"),
                "gauge": ("",), "info": ("_info",)}
    names = {"up"}
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def test_metric_names_are_parsed_from_expressions() -> None:
    expr = ('max by (service, group) (max_over_time(consumer_halted{job="x"}[15m])) == 1 and on (service) '
            'sum by (service) (rate(http_requests_total{status=~"5.."}[5m])) / up > 0.05')
    assert metric_names(expr) == {"consumer_halted", "http_requests_total", "up"}


def test_alerts_only_use_metrics_the_services_export() -> None:
    exported = exported_names()
    assert {"consumer_halted", "consumer_retrying", "consumer_lag", "events_dead_lettered_total"} <= exported
    for rule in _rules():
        assert metric_names(rule["expr"]) <= exported, rule.get("alert")


def test_rule_tests_only_feed_metrics_the_services_export() -> None:
    exported = exported_names()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for series in case.get("input_series", []):
                name = series["series"].split("{", 1)[0].strip()
                assert name in exported, f"{path.name}: {case.get('name')}: {name}"
