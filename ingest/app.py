"""The ingest service's app factory: validated telemetry in over HTTP, onto Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from dronetrack import kafka
from dronetrack.settings import Settings
from dronetrack.web import READY_CHECKS, instrument
from ingest import handlers
from ingest.keys import PRODUCER, SETTINGS


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.ingest_max_body_bytes)
    app[SETTINGS] = settings
    instrument(app)
    app.cleanup_ctx.append(_producer)
    app.router.add_post("/v1/telemetry", handlers.post_telemetry)
    return app


async def _producer(app: web.Application) -> AsyncIterator[None]:
    producer = kafka.producer(app[SETTINGS])
    await producer.start()
    app[PRODUCER] = producer

    async def kafka_ready() -> None:
        await producer.client.fetch_all_metadata()

    app[READY_CHECKS]["kafka"] = kafka_ready
    try:
        yield
    finally:
        await producer.stop()  # flushes whatever is still buffered
