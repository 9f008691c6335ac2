"""HTTP handlers of the ingest service."""

from __future__ import annotations

import logging
import time

import msgspec
from aiohttp import web

from dronetrack import record, topics
from dronetrack.settings import Settings
from dronetrack.tokens import TokenTable
from ingest import auth, body, problems
from ingest.metrics import IngestMetrics
from ingest.openapi import document
from ingest.publisher import Message, NotAcknowledged, Publisher
from ingest.ratelimit import RateLimiter

log = logging.getLogger(__name__)

LATE: list[tuple[str, bytes]] = [(topics.LATE_HEADER, b"1")]
HISTORY: list[tuple[str, bytes]] = [(topics.BACKFILL_HEADER, b"1")]
NO_HEADERS: list[tuple[str, bytes]] = []
_encoder = msgspec.json.Encoder()


class TelemetryIntake:
    """``POST /v1/telemetry`` and everything it needs, built once by the app factory. The
    handler is a bound method, so it reaches its parts as attributes rather than through the
    request's app mapping, several lookups fewer on every request."""

    publisher: Publisher  # set once the producer has started, before the first request

    def __init__(
        self,
        settings: Settings,
        tokens: TokenTable,
        limiter: RateLimiter,
        metrics: IngestMetrics,
    ) -> None:
        self.settings = settings
        self.tokens = tokens
        self.limiter = limiter
        self.metrics = metrics

    async def post(self, request: web.Request) -> web.Response:
        """Accept one record, a JSON array or NDJSON; 202 only once Kafka acknowledged every
        record, and nothing at all of a batch with any bad record."""
        settings, metrics = self.settings, self.metrics
        records = 0
        try:
            fleet = auth.fleet_of(request, self.tokens)
            media_type = body.check_media_type(request)
            history = body.is_history(request)
            coding = body.content_coding(request)
            raw = await body.read(
                request, settings.ingest_max_body_bytes, settings.ingest_body_timeout_s
            )
            if coding is not None:
                raw = body.inflate(raw, coding, settings.ingest_max_body_bytes)
            batch = body.decode(raw, media_type, settings.ingest_max_batch_records)
            records = len(batch)
            received_at = time.time_ns() // 1_000_000
            late = body.check_event_times(
                batch,
                single=media_type == body.JSON and raw.lstrip()[:1] == b"{",
                now_ms=received_at,
                max_future_ms=settings.ingest_max_future_ms,
                max_age_ms=settings.ingest_max_age_ms,
                reject_old=settings.ingest_old_records == "reject",
                history=history,
            )
            wait_s = self.limiter.take(fleet, records)
            if wait_s:
                raise problems.rate_limited(fleet, self.limiter.retry_after(wait_s))
            suffix = record.topic_suffix(fleet, received_at)
            messages: list[Message] = [
                (
                    r.drone_id.encode(),
                    record.encode_for_topic(r, suffix),
                    HISTORY if history else LATE if is_late else NO_HEADERS,
                )
                for r, is_late in zip(batch, late, strict=True)
            ]
            try:
                seconds = await self.publisher.publish(messages)
            except NotAcknowledged as exc:
                log.warning("publish failed", extra={"error": str(exc), "records": records})
                raise problems.unavailable(settings.ingest_retry_after_s) from None
        except problems.Problem as refusal:
            metrics.reject(refusal.reason, records)
            return refusal.response()
        n_late = sum(late)
        metrics.accept(fleet, records, n_late, seconds, history)
        return web.Response(
            body=_encoder.encode({"accepted": records, "late": n_late}),
            status=202,
            content_type="application/json",
        )

    async def openapi(self, request: web.Request) -> web.Response:
        """The OpenAPI document of this service, as configured (limits come from settings)."""
        return web.json_response(document(self.settings))
