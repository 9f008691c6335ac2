"""HTTP handlers of the ingest service."""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiokafka.errors import KafkaError

from dronetrack import record, topics
from dronetrack.web import problem
from ingest.keys import PRODUCER, SETTINGS

log = logging.getLogger(__name__)

# How long a request may wait for the broker's acknowledgement before it is told to retry.
ACK_DEADLINE_S = 5.0
RETRY_AFTER_S = "2"


async def post_telemetry(request: web.Request) -> web.Response:
    """Accept one record or a JSON array; answer 202 only once Kafka acknowledged every one."""
    settings = request.app[SETTINGS]
    body = await request.read()
    try:
        records = record.decode_request(body)
    except record.MalformedBody as exc:
        return problem(400, "Malformed JSON", str(exc))
    except record.RecordsInvalid as exc:
        return problem(
            422,
            "Invalid telemetry",
            f"{len(exc.errors)} problem(s) in the request body",
            errors=[{"index": e.index, "field": e.field, "reason": e.reason} for e in exc.errors],
        )
    if len(records) > settings.ingest_max_batch_records:
        return problem(
            413,
            "Batch too large",
            f"{len(records)} records; at most {settings.ingest_max_batch_records} per request",
        )
    if not records:
        return problem(422, "Invalid telemetry", "the batch is empty", errors=[])

    producer = request.app[PRODUCER]
    fleet = settings.default_fleet
    received_at = time.time_ns() // 1_000_000
    try:
        async with asyncio.timeout(ACK_DEADLINE_S):
            acks = [
                await producer.send(
                    topics.TELEMETRY,
                    record.encode(record.to_topic(r, fleet, received_at)),
                    key=r.drone_id.encode(),
                )
                for r in records
            ]
            await asyncio.gather(*acks)
    except (KafkaError, TimeoutError) as exc:
        log.warning("publish failed", extra={"error": repr(exc), "records": len(records)})
        response = problem(503, "Broker unavailable", "the records were not stored; retry later")
        response.headers["Retry-After"] = RETRY_AFTER_S
        return response
    return web.json_response({"accepted": len(records)}, status=202)
