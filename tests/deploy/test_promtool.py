"""Prometheus's own checker on the compose config and the alert rules, and the rules' unit tests
(deploy/prometheus/alerts.test.yml): every alert fires when it should and stays silent when it
should not. promtool comes from Debian's `prometheus` package, which `make test` installs."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.manifests import DEPLOY

PROMETHEUS = DEPLOY / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "alerts.test.yml"
ALERTS = sorted(
    rule["alert"]
    for group in yaml.safe_load(RULES.read_text())["groups"]
    for rule in group["rules"]
)


def _promtool(*args: str) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make promtool` (as root) installs Debian's prometheus"
    done = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def test_the_compose_prometheus_config_is_valid() -> None:
    """Checked where it lies, so its rule_files must be relative to it (as in the container)."""
    _promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))


def test_the_alert_rules_are_valid() -> None:
    _promtool("check", "rules", str(RULES))


def test_the_alert_rules_pass_their_unit_tests() -> None:
    _promtool("test", "rules", str(RULE_TESTS))


def _cases() -> list[tuple[str, bool]]:
    """(alert, fires) for every alert_rule_test of the unit tests."""
    doc = yaml.safe_load(RULE_TESTS.read_text())
    return [
        (case["alertname"], bool(case.get("exp_alerts")))
        for test in doc["tests"]
        for case in test.get("alert_rule_test", [])
    ]


@pytest.mark.parametrize("alert", ALERTS)
def test_every_alert_is_tested_firing_and_silent(alert: str) -> None:
    cases = _cases()
    assert (alert, True) in cases, f"no unit test in {RULE_TESTS.name} where {alert} fires"
    assert (alert, False) in cases, f"no unit test in {RULE_TESTS.name} where {alert} is silent"


@pytest.mark.parametrize("alert", ALERTS)
def test_aggregations_keep_the_namespace(alert: str) -> None:
    """One Prometheus may watch dev and prod: an aggregation that drops `namespace` merges them."""
    (rule,) = [
        r
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if r["alert"] == alert
    ]
    expr = rule["expr"]
    for match in re.finditer(r"\b(sum|count|max|min|avg)\b\s*(by\s*\(([^)]*)\))?\s*\(", expr):
        assert match.group(2), f"{alert}: `{match.group(0)}` aggregates without `by (namespace…)`"
        labels = {label.strip() for label in match.group(3).split(",")}
        assert "namespace" in labels, f"{alert}: `{match.group(0)}` drops namespace"
