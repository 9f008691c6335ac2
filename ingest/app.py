"""The ingest service's app factory: authenticated, validated telemetry in over HTTP, onto Kafka.

Shutdown order (aiohttp's runner, on SIGTERM): stop listening, let in-flight requests finish
(up to ``ingest_drain_s``), then the cleanup below flushes and closes the producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from dronetrack import kafka, tokens, topics
from dronetrack.settings import Settings, SettingsError
from dronetrack.web import READY_CHECKS, REGISTRY, instrument
from ingest.handlers import TelemetryIntake
from ingest.keys import INTAKE, SETTINGS
from ingest.metrics import IngestMetrics
from ingest.publisher import Publisher
from ingest.ratelimit import RateLimiter

log = logging.getLogger(__name__)

BATCH_BYTES = 512 * 1024


def check(settings: Settings) -> None:
    """Refuse settings that would make the service misbehave, naming the variable."""
    if settings.ingest_old_records not in ("mark", "reject"):
        raise SettingsError("DRONETRACK_INGEST_OLD_RECORDS must be 'mark' or 'reject'")
    if settings.ingest_rate_limit_rps and (
        settings.ingest_rate_limit_burst < settings.ingest_max_batch_records
    ):
        raise SettingsError(
            "DRONETRACK_INGEST_RATE_LIMIT_BURST must be at least "
            "DRONETRACK_INGEST_MAX_BATCH_RECORDS, or a full batch could never pass"
        )


def create_app(settings: Settings) -> web.Application:
    check(settings)
    app = web.Application(
        client_max_size=settings.ingest_max_body_bytes,
        # Bodies are inflated by the handler, within the body limit (see body.inflate).
        handler_args={"auto_decompress": False},
    )
    app[SETTINGS] = settings
    table = tokens.TokenTable(tokens.load(settings.ingest_tokens_file))
    if not len(table):
        log.warning(
            "no ingest tokens: every request gets 401 until a token is added to the file "
            "(dronetrack token create FLEET)",
            extra={"file": str(settings.ingest_tokens_file)},
        )
    instrument(app)
    intake = TelemetryIntake(
        settings,
        table,
        RateLimiter(settings.ingest_rate_limit_rps, settings.ingest_rate_limit_burst),
        IngestMetrics(app[REGISTRY]),
    )
    app[INTAKE] = intake
    app.cleanup_ctx.append(_producer)
    app.cleanup_ctx.append(_token_reloader)
    app.router.add_post("/v1/telemetry", intake.post)
    app.router.add_get("/openapi.json", intake.openapi)
    return app


async def _producer(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # Batches are filled across requests (see publisher.py), so let one hold a busy moment.
    producer = kafka.producer(settings, max_batch_size=BATCH_BYTES)
    await producer.start()
    publisher = Publisher(producer, topics.TELEMETRY, settings.ingest_ack_deadline_ms / 1000)
    try:
        await publisher.start()
        app[INTAKE].publisher = publisher

        async def kafka_ready() -> None:
            await producer.client.fetch_all_metadata()

        app[READY_CHECKS]["kafka"] = kafka_ready
        app[READY_CHECKS]["topics"] = publisher.ready
        yield
    finally:
        # In-flight requests are answered by now; hand over what 503'd requests left behind.
        await publisher.close(settings.kafka_request_timeout_ms / 1000)
        await producer.stop()  # flushes whatever is still buffered


async def _token_reloader(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.ingest_tokens_reload_s <= 0:
        yield
        return
    task = asyncio.create_task(
        _reload_tokens_forever(
            app[INTAKE], settings.ingest_tokens_file, settings.ingest_tokens_reload_s
        ),
        name="reload-tokens",
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _reload_tokens_forever(intake: TelemetryIntake, path: Path, every_s: float) -> None:
    """Take up added and removed tokens without a restart: revoking a leaked token must not wait
    for a rollout. (A Kubernetes Secret mounted as a directory reaches the file within about a
    minute of its update.) A file that does not parse leaves the tokens as they were."""
    refused: str | None = None
    while True:
        await asyncio.sleep(every_s)
        try:
            table = tokens.load(path)
            if tokens.load(path) != table:  # read while being written: wait for the next turn
                continue
        except (ValueError, OSError) as exc:  # malformed, not UTF-8, unreadable
            if str(exc) != refused:  # say it once per bad version of the file
                refused = str(exc)
                log.error(
                    "tokens file not reloaded; the previous tokens stay", extra={"error": refused}
                )
                intake.metrics.token_reloads.labels("refused").inc()
            continue
        refused = None
        if table == intake.tokens.digests:
            continue
        intake.tokens = tokens.TokenTable(table)
        intake.metrics.token_reloads.labels("applied").inc()
        log.info(
            "tokens reloaded", extra={"tokens": len(table), "fleets": len(set(table.values()))}
        )
        if not table:
            log.warning(
                "the tokens file has no tokens: every request gets 401", extra={"file": str(path)}
            )
