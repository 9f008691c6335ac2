"""Alert rules: one set for compose's Prometheus and the Kubernetes PrometheusRule, covering what
an SRE must be woken for, each with a runbook section in docs/operations.md."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.deploy.manifests import DEPLOY, DOCS, OVERLAYS, matches, named, of_kind, render

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
        ("sink errors", "streams_sink_errors_total"),
        ("no telemetry received", 'route="/v1/telemetry", status="202"'),
        ("dead letters", 'streams_events_total{outcome="dead_letter"}'),
        ("refused token reloads", 'ingest_token_file_reloads_total{outcome="refused"}'),
        ("data freshness", "streams_freshness_seconds_bucket"),
        ("KEDA's lag scaler failing", "keda_scaler_detail_errors_total"),
        ("the Kafka exporter absent", 'up{job="kafka-exporter"}'),
        ("under-replicated partitions", "kafka_topic_partition_under_replicated_partition"),
        ("notifications dead-lettered", 'notifier_deliveries_total{outcome="dead_lettered"}'),
        ("notification deliveries failing", 'notifier_delivery_attempts_total{result!="ok"}'),
        ("notifier consumer lag", 'consumergroup="dronetrack-notifier"'),
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


def test_lag_alerts_watch_the_groups_the_services_consume_in() -> None:
    """Each lag alert names a consumer group the code uses, on the topic that group reads."""
    from dronetrack import topics
    from dronetrack.settings import Settings

    groups = {
        Settings().streams_worker_id: topics.TELEMETRY,
        Settings().notify_group: topics.ALERTS,
    }
    watched = set()
    for name, rule in ALERTS.items():
        if "kafka_consumergroup_lag" in rule["expr"]:
            (group,) = re.findall(r'consumergroup="([^"]+)"', rule["expr"])
            assert group in groups, f"{name} watches group {group}, which no service uses"
            assert f'topic="{groups[group]}"' in rule["expr"], name
            watched.add(group)
    assert watched == set(groups), f"no lag alert for {set(groups) - watched}"


def test_links_inside_the_operations_guide_resolve() -> None:
    links = set(re.findall(r"\]\(#([^)]+)\)", DOCS.read_text()))
    assert links <= _anchors(), f"broken links in docs/operations.md: {links - _anchors()}"


def _exported_metrics() -> set[str]:
    """Every series name the three services can export, from their real registries."""
    from prometheus_client import CollectorRegistry

    from dashboard.app import create_app as create_dashboard
    from dronetrack.settings import Settings
    from dronetrack.web import REGISTRY
    from ingest.app import create_app as create_ingest
    from notifier.app import create_app as create_notifier
    from notifier.metrics import NotifierMetrics
    from streams.metrics import StreamMetrics

    streams = CollectorRegistry()
    StreamMetrics(streams)
    notifier = create_notifier(Settings())[REGISTRY]
    NotifierMetrics(notifier)  # made when the notifier starts, with its store
    registries = [
        create_ingest(Settings())[REGISTRY],
        create_dashboard(Settings())[REGISTRY],
        notifier,
    ]
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    return {
        family.name + suffix
        for registry in [*registries, streams]
        for family in registry.collect()
        for suffix in suffixes.get(family.type, [""])
    }


def test_alerts_watch_metrics_the_services_export() -> None:
    exported = _exported_metrics()
    from_exporters = {
        "kafka_consumergroup_lag",
        "kafka_topic_partition_under_replicated_partition",
        "keda_scaler_detail_errors_total",
        "up",
        "vector",
    }
    for name, rule in ALERTS.items():
        referenced = set(re.findall(r"\b([a-z_]+)(?=\s*[{\[])", rule["expr"])) - from_exporters
        referenced -= {"sum", "rate", "by", "max", "min", "avg", "increase", "or", "and", "count"}
        referenced -= {"histogram_quantile", "unless"}
        missing = referenced - exported
        assert not missing, f"alert {name} watches {sorted(missing)}, which no service exports"


def test_grafana_panels_chart_metrics_the_services_export() -> None:
    import json

    board = json.loads((DEPLOY / "grafana" / "dashboards" / "dronetrack.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", []) if "expr" in t]
    assert exprs
    exported = _exported_metrics() | {"kafka_consumergroup_lag", "up"}
    for expr in exprs:
        missing = set(re.findall(r"\b([a-z_]+)(?=\s*[{\[])", expr)) - exported
        assert not missing, f"Grafana charts {sorted(missing)}, which no service exports"


def _sample(registry: object, name: str, labels: dict[str, str]) -> float | None:
    from prometheus_client import CollectorRegistry

    assert isinstance(registry, CollectorRegistry)
    return registry.get_sample_value(name, labels)


@pytest.mark.parametrize(
    ("service", "name", "labels"),
    [
        ("dashboard", "dashboard_logins_total", {"outcome": "ok"}),
        ("dashboard", "dashboard_logins_total", {"outcome": "refused"}),
        ("dashboard", "dashboard_logins_total", {"outcome": "throttled"}),
        ("ingest", "ingest_token_file_reloads_total", {"outcome": "applied"}),
        ("ingest", "ingest_token_file_reloads_total", {"outcome": "refused"}),
        ("streams", "streams_events_total", {"outcome": "stored"}),
        ("streams", "streams_events_total", {"outcome": "dead_letter"}),
        ("streams", "streams_events_total", {"outcome": "out_of_order"}),
        ("streams", "streams_sink_errors_total", {"target": "store"}),
        ("streams", "streams_sink_errors_total", {"target": "kafka"}),
        ("notifier", "notifier_deliveries_total", {"kind": "webhook", "outcome": "dead_lettered"}),
        ("notifier", "notifier_deliveries_total", {"kind": "email", "outcome": "dead_lettered"}),
        ("notifier", "notifier_delivery_attempts_total", {"kind": "webhook", "result": "ok"}),
        ("notifier", "notifier_delivery_attempts_total", {"kind": "email", "result": "retry"}),
        ("notifier", "notifier_delivery_attempts_total", {"kind": "email", "result": "failed"}),
    ],
)
def test_alerted_counters_exist_at_zero_before_first_use(
    service: str, name: str, labels: dict[str, str]
) -> None:
    """A counter that appears with its first increment hides that increment from rate() and
    increase() (4 throttled logins read as 0): alerted series are exported at 0 from the start."""
    from prometheus_client import CollectorRegistry

    from dashboard.app import create_app as create_dashboard
    from dronetrack.settings import Settings
    from dronetrack.web import REGISTRY
    from ingest.app import create_app as create_ingest
    from streams.metrics import StreamMetrics

    if service == "streams":
        registry = CollectorRegistry()
        StreamMetrics(registry)
    elif service == "notifier":
        from notifier.metrics import NotifierMetrics

        registry = CollectorRegistry()
        NotifierMetrics(registry)
    else:
        registry = {"ingest": create_ingest, "dashboard": create_dashboard}[service](Settings())[
            REGISTRY
        ]
    assert _sample(registry, name, labels) == 0.0, f"{name}{labels} is not exported at 0"


def _scrape_jobs(overlay: str) -> set[str]:
    """The `job` label of every target the Prometheus Operator derives from our monitors: a
    ServiceMonitor's is its Service's name, a PodMonitor's `<namespace>/<name>` unless a
    relabeling sets it."""
    docs = render(overlay)
    jobs = set()
    for sm in of_kind(docs, "ServiceMonitor"):
        for svc in of_kind(docs, "Service"):
            if matches(sm["spec"]["selector"], svc["metadata"].get("labels", {})):
                jobs.add(svc["metadata"]["name"])
    for pm in of_kind(docs, "PodMonitor"):
        for ep in pm["spec"]["podMetricsEndpoints"]:
            job = f"{pm['metadata']['namespace']}/{pm['metadata']['name']}"
            for r in ep.get("relabelings", []):
                if r.get("targetLabel") == "job" and r.get("action", "replace") == "replace":
                    job = r["replacement"]
            jobs.add(job)
    return jobs


def _compose_jobs() -> set[str]:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    return {c["job_name"] for c in config["scrape_configs"]}


def _jobs_in(expr: str) -> set[str]:
    jobs: set[str] = set()
    for values in re.findall(r'\bjob=~?"([^"]+)"', expr):
        jobs |= set(values.split("|"))
    return jobs


def _grafana_exprs() -> list[str]:
    import json

    board = json.loads((DEPLOY / "grafana" / "dashboards" / "dronetrack.json").read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", []) if "expr" in t]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_alerts_and_panels_filter_on_jobs_that_are_scraped(overlay: str) -> None:
    """A job filter no scrape produces makes an alert or a panel silently empty."""
    exprs = [rule["expr"] for rule in ALERTS.values()] + _grafana_exprs()
    scraped = _scrape_jobs(overlay) & _compose_jobs()
    for expr in exprs:
        missing = _jobs_in(expr) - scraped
        assert not missing, f"{expr!r} filters on job {sorted(missing)}, not scraped in both"


@pytest.mark.parametrize(
    ("concern", "metric"),
    [
        ("records accepted by ingest per second", "ingest_records_accepted_total"),
        ("records stored by workers per second", r'streams_events_total\{[^}]*outcome="stored"'),
        ("received-to-stored freshness", "streams_freshness_seconds_bucket"),
        ("dead letters", r'streams_events_total\{[^}]*outcome="dead_letter"'),
        ("consumer lag", "kafka_consumergroup_lag"),
        ("notifications delivered and dead-lettered", "notifier_deliveries_total"),
        ("notification attempts failing", r'notifier_delivery_attempts_total\{[^}]*result!="ok"'),
        ("alert-to-delivered latency", "notifier_alert_to_delivered_seconds_bucket"),
        ("notifier lag", 'consumergroup="dronetrack-notifier"'),
    ],
)
def test_grafana_charts_the_pipeline(concern: str, metric: str) -> None:
    charted = any(re.search(metric, expr) for expr in _grafana_exprs())
    assert charted, f"no Grafana panel for {concern}"


def test_grafana_panels_have_unique_ids_and_do_not_overlap() -> None:
    import json

    board = json.loads((DEPLOY / "grafana" / "dashboards" / "dronetrack.json").read_text())
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in board["panels"]:
        g = p["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not mine & cells, f"panel {p['title']!r} overlaps another"
        assert g["x"] + g["w"] <= 24
        cells |= mine


def test_the_5xx_ratio_leaves_out_exactly_the_ops_endpoints() -> None:
    """Probes and scrapes are not client traffic; every other route counts."""
    from aiohttp import web

    from dronetrack.web import instrument

    app = web.Application()
    instrument(app)
    ops = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    expr = ALERTS["DronetrackIngest5xxRate"]["expr"]
    excluded = re.findall(r'route!~"([^"]+)"', expr)
    assert len(excluded) == 2, "both the 5xx count and the total leave them out"
    for alternatives in excluded:
        assert set(alternatives.split("|")) == ops
