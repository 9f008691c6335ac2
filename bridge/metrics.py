"""The bridge's Prometheus metrics, every label created at zero so a first burst shows."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

MESSAGE_OUTCOMES = ("used", "ignored", "corrupt")
RECORD_OUTCOMES = (
    "queued",  # made from a position and written to the on-disk queue
    "sent",  # acknowledged by ingest (202)
    "refused",  # answered with a 4xx other than 429: dropped, never retried
    "dropped_full",  # the queue was full: the oldest records made room
    "no_fix",  # a position came while the GPS reported no fix
    "no_battery",  # the vehicle has not told its battery yet
    "invalid",  # a value outside the record schema (logged)
)


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "bridge_mavlink_messages_total",
            "MAVLink messages read, by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.records = Counter(
            "bridge_records_total", "Telemetry records, by outcome.", ["outcome"], registry=registry
        )
        self.requests = Counter(
            "bridge_ingest_requests_total",
            "Batches posted to ingest, by answer (a status code, or 'error' for no answer).",
            ["status"],
            registry=registry,
        )
        self.queue = Gauge(
            "bridge_queue_records", "Records waiting in the on-disk queue.", registry=registry
        )
        self.vehicles = Gauge(
            "bridge_vehicles", "Vehicles (system ids) heard from.", registry=registry
        )
        for outcome in MESSAGE_OUTCOMES:
            self.messages.labels(outcome)
        for outcome in RECORD_OUTCOMES:
            self.records.labels(outcome)
        for status in ("202", "429", "503", "error"):
            self.requests.labels(status)
