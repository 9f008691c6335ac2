"""The notifier's Prometheus metrics, every labelled series created at zero. Only the event
loop writes them, so they are the lock-free kind (dronetrack.loopmetrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from dronetrack.loopmetrics import Counter, Histogram

KINDS = ("webhook", "email")


class NotifierMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "notifier_alert_events_total",
            "Alert events read, by whether any channel wanted them.",
            ["outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "notifier_delivery_attempts_total",
            "Delivery attempts, by channel kind and result (ok, retry, failed).",
            ["kind", "result"],
            registry=registry,
        )
        self.deliveries = Counter(
            "notifier_deliveries_total",
            "Events finished per channel: delivered, or dead-lettered after failing.",
            ["kind", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "notifier_alert_to_delivered_seconds",
            "From the alert transition's time to the receiver's acknowledgement.",
            ["kind"],
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        for outcome in ("matched", "unmatched", "undecodable"):
            self.events.labels(outcome)
        for kind in KINDS:
            self.latency.labels(kind)
            for result in ("ok", "retry", "failed"):
                self.attempts.labels(kind, result)
            for outcome in ("delivered", "dead_lettered"):
                self.deliveries.labels(kind, outcome)
