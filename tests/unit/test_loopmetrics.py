"""The lock-free request metrics render as the Prometheus counters and histograms they replace."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dronetrack.loopmetrics import Counter, Histogram
from dronetrack.web import instrument

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parsed(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def samples(registry: CollectorRegistry) -> Samples:
    return parsed(generate_latest(registry).decode())


def test_counters_add_up_per_label_set() -> None:
    registry = CollectorRegistry()
    sent = Counter("things_sent_total", "Things sent.", ["kind"], registry=registry)
    total = Counter("things_total", "Things.", registry=registry)
    sent.labels("a").inc()
    sent.labels("a").inc(2)
    sent.labels("b").inc()
    total.inc(5)
    got = samples(registry)
    assert got[("things_sent_total", (("kind", "a"),))] == 3
    assert got[("things_sent_total", (("kind", "b"),))] == 1
    assert got[("things_total", ())] == 5


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    registry = CollectorRegistry()
    latency = Histogram("wait_seconds", "Waits.", buckets=(0.1, 1), registry=registry)
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        latency.observe(value)
    got = samples(registry)
    assert got[("wait_seconds_bucket", (("le", "0.1"),))] == 2  # 0.1 falls in le="0.1"
    assert got[("wait_seconds_bucket", (("le", "1.0"),))] == 4
    assert got[("wait_seconds_bucket", (("le", "+Inf"),))] == 5
    assert got[("wait_seconds_count", ())] == 5
    assert got[("wait_seconds_sum", ())] == pytest.approx(8.65)


def test_a_wrong_number_of_labels_is_refused() -> None:
    counter = Counter("x_total", "X.", ["a", "b"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("only one")


async def test_requests_are_counted_by_route_method_and_status(
    aiohttp_client: Any,
) -> None:
    app = web.Application()
    instrument(app)
    client: TestClient[Any, Any] = await aiohttp_client(app)
    await client.get("/healthz")
    await client.get("/healthz")
    await client.get("/nowhere")
    await client.request("PROPFIND", "/healthz")  # a WebDAV method: counted as "other"
    got = parsed(await (await client.get("/metrics")).text())
    ok = (("method", "GET"), ("route", "/healthz"), ("status", "200"))
    assert got[("http_requests_total", ok)] == 2
    missing = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert got[("http_requests_total", missing)] == 1
    brewed = (("method", "other"), ("route", "unmatched"), ("status", "405"))
    assert got[("http_requests_total", brewed)] == 1
    assert got[("http_request_duration_seconds_count", (("route", "/healthz"),))] == 2
