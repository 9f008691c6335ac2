"""The worker's Prometheus metrics (served on /metrics with the ops endpoints)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Sub-second resolution where the latency goal (p99 < 250 ms) lives, seconds beyond.
LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75,
    1, 1.5, 2, 3, 5, 10, 30, 60,
)  # fmt: skip


class StreamMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            "streams_events_total",
            "Records consumed, by outcome: stored, dead_letter; out_of_order counts stored"
            " records older than their drone's state (kept in the track, no state change).",
            ["outcome"],
            registry=registry,
        )
        self.freshness = Histogram(
            "streams_freshness_seconds",
            "End-to-end freshness: ingest received_at to stored.",
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.processing = Histogram(
            "streams_processing_latency_seconds",
            "Event time (the drone's ts) to stored.",
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.sink_seconds = Histogram(
            "streams_sink_write_seconds",
            "Time to write one batch's outputs, by target (store, kafka).",
            ["target"],
            registry=registry,
            buckets=LATENCY_BUCKETS,
        )
        self.sink_stalled = Gauge(
            "streams_sink_stalled_seconds",
            "Age of the oldest write in progress, retries included (ms normally; 0: none).",
            registry=registry,
        )
        self.sink_errors = Counter(
            "streams_sink_errors_total",
            "Failed batch writes (each is retried), by target.",
            ["target"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "streams_batch_records",
            "Records per processed batch.",
            registry=registry,
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
        )
        self.alerts = Counter(
            "streams_alerts_total",
            "Alert transitions, by type and event (raised, cleared).",
            ["type", "event"],
            registry=registry,
        )
        self.implausible = Counter(
            "streams_implausible_positions_total",
            "Records whose position jump implies more than the maximum speed.",
            registry=registry,
        )
        self.flights = Counter(
            "streams_flights_total",
            "Flights finished (landed or ended by a lost link).",
            registry=registry,
        )
        self.lag = Gauge(
            "streams_consumer_lag",
            "Records behind the end of the partition (highwater - position), per partition.",
            ["topic", "partition"],
            registry=registry,
        )
        # Exported at 0 from the start: a series born with its first increment hides it from
        # rate() and increase(), and the alerts watch these.
        for outcome in ("stored", "dead_letter", "out_of_order"):
            self.events.labels(outcome)
        for target in ("store", "kafka"):
            self.sink_errors.labels(target)
