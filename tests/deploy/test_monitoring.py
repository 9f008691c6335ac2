"""Alert rules: one set for compose's Prometheus and the Kubernetes PrometheusRule, covering what
an SRE must be woken for, each with a runbook section in docs/operations.md."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, DOCS, OVERLAYS, named, render

RULES = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
ALERTS = {rule["alert"]: rule for group in RULES["groups"] for rule in group["rules"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheusrule_equals_the_compose_rules(overlay: str) -> None:
    rule = named(render(overlay), "PrometheusRule", "dronetrack")
    assert rule["spec"] == RULES, "deploy/prometheus/alerts.yml and prometheusrule.yaml differ"


@pytest.mark.parametrize(
    ("concern", "metric"),
    [
        ("consumer lag", "kafka_consumergroup_lag"),
        ("ingest 5xx rate", 'status=~"5.."'),
        ("sink errors", "dronetrack_sink_errors_total"),
        ("no telemetry received", 'route="/v1/telemetry", status="202"'),
    ],
)
def test_the_required_alerts_exist(concern: str, metric: str) -> None:
    assert any(metric in rule["expr"] for rule in ALERTS.values()), f"no alert on {concern}"


def _anchors() -> set[str]:
    """GitHub's heading anchors of docs/operations.md."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", DOCS.read_text(), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_every_alert_has_a_runbook(alert: str) -> None:
    rule = ALERTS[alert]
    url = rule["annotations"]["runbook_url"]
    path, _, anchor = url.partition("#")
    assert path == "docs/operations.md"
    assert anchor in _anchors(), f"docs/operations.md has no section #{anchor} for {alert}"
    assert rule["annotations"]["summary"]
    assert rule["labels"]["severity"] in ("warning", "critical")
    assert re.fullmatch(r"\d+[smh]", rule["for"]), f"{alert}: a 'for' avoids paging on blips"


def test_lag_alerts_watch_the_stream_workers_group() -> None:
    from dronetrack.settings import Settings

    group = Settings().streams_worker_id
    for name, rule in ALERTS.items():
        if "kafka_consumergroup_lag" in rule["expr"]:
            assert f'consumergroup="{group}"' in rule["expr"], name


def test_links_inside_the_operations_guide_resolve() -> None:
    links = set(re.findall(r"\]\(#([^)]+)\)", DOCS.read_text()))
    assert links <= _anchors(), f"broken links in docs/operations.md: {links - _anchors()}"
