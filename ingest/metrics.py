"""The ingest service's own Prometheus metrics (request counts, latency and in-flight requests
come from ``dronetrack.web.instrument``); lock-free, as every request updates them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from dronetrack.loopmetrics import Counter, Histogram

REJECT_REASONS = (
    "unauthorized",
    "unsupported_media_type",
    "unsupported_encoding",
    "body_too_large",
    "body_timeout",
    "batch_too_large",
    "bad_header",
    "malformed",
    "invalid",
    "event_time",
    "rate_limited",
    "unavailable",
)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.accepted = Counter(
            "ingest_records_accepted_total",
            "Records acknowledged by Kafka and answered with 202.",
            ["fleet"],
            registry=registry,
        )
        self.rejected = Counter(
            "ingest_requests_rejected_total",
            "Requests refused, by reason.",
            ["reason"],
            registry=registry,
        )
        self.rejected_records = Counter(
            "ingest_records_rejected_total",
            "Records refused (every record of a refused batch), by reason.",
            ["reason"],
            registry=registry,
        )
        self.late = Counter(
            "ingest_records_late_total",
            "Records older than the configured maximum age, sent on with a late mark.",
            registry=registry,
        )
        self.history = Counter(
            "ingest_records_backfill_total",
            "Records sent as history (Dronetrack-Backfill: 1), marked so on the topic.",
            registry=registry,
        )
        self.token_reloads = Counter(
            "ingest_token_file_reloads_total",
            "Changes of the tokens file: applied, or refused (malformed; the old tokens stay).",
            ["outcome"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "ingest_batch_records",
            "Records per accepted request.",
            registry=registry,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
        )
        self.publish_latency = Histogram(
            "ingest_publish_duration_seconds",
            "From handing a request's records to the producer to the broker's last ack.",
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
            self.rejected_records.labels(reason)
        for outcome in ("applied", "refused"):  # alerted on: exported at 0 from the start
            self.token_reloads.labels(outcome)
        self._batch_size = self.batch_size.labels()
        self._publish_latency = self.publish_latency.labels()
        self._late = self.late.labels()
        self._history = self.history.labels()

    def accept(
        self, fleet: str, records: int, late: int, publish_s: float, history: bool = False
    ) -> None:
        """Count a request answered 202 (every accepted request comes here)."""
        self._publish_latency.observe(publish_s)
        self._batch_size.observe(records)
        self.accepted.labels(fleet).inc(records)
        if late:
            self._late.inc(late)
        if history:
            self._history.inc(records)

    def reject(self, reason: str, records: int) -> None:
        self.rejected.labels(reason).inc()
        if records:
            self.rejected_records.labels(reason).inc(records)
