"""Broker outage: while the broker is down ingest answers 503 + Retry-After within its deadline
(never 202, never a hang); when the broker is back ingest recovers by itself, and every record
that got a 202 is on the topic exactly once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dronetrack import tokens
from dronetrack.broker import EmbeddedBroker
from dronetrack.settings import Settings
from ingest.app import create_app
from ingest.keys import INTAKE
from tests.integration.conftest import eventually
from tests.integration.helpers import good, read_topic

AiohttpClient = Any
DEADLINE_MS = 1_000


@pytest.fixture
async def own_broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    """A broker of this test's own, since the test stops it."""
    broker = EmbeddedBroker(Settings.from_env({}), log_path=tmp_path / "broker.log")
    await broker.start()
    yield broker
    await broker.stop()


async def test_outage_gives_503_then_recovers_with_every_202_on_the_topic_once(
    aiohttp_client: AiohttpClient, own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    settings = own_broker.settings.replace(
        ingest_tokens_file=tmp_path / "tokens",
        ingest_ack_deadline_ms=DEADLINE_MS,
        kafka_request_timeout_ms=3_000,
    )
    token = tokens.create(settings.ingest_tokens_file, "outage")
    client = await aiohttp_client(create_app(settings))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    drone = f"outage-{uuid.uuid4().hex[:8]}"
    seq = iter(range(1_000_000))
    acked: list[int] = []

    async def post(n: int) -> int:
        batch = [good(drone, next(seq)) for _ in range(n)]
        response = await client.post("/v1/telemetry", data=json.dumps(batch), headers=headers)
        if response.status == 202:
            acked.extend(r["seq"] for r in batch)
        else:
            assert response.status == 503, await response.text()
            assert response.headers["Retry-After"] == "2"
            assert (await response.json())["title"] == "Broker unavailable"
        return response.status

    assert [await post(10) for _ in range(5)] == [202] * 5
    mine = await read_topic(settings, lambda r: r.drone_id == drone)
    assert sorted(r.seq for r, _ in mine) == acked

    await own_broker.stop()
    async with asyncio.timeout(DEADLINE_MS / 1000 + 5):  # a hang would fail here
        statuses = await asyncio.gather(*(post(n) for n in (1, 10, 100)))
    assert statuses == [503, 503, 503]
    assert (await client.get("/readyz")).status == 503

    # Let the producer give up on the records it still holds (their requests got 503): the
    # embedded broker, restarted under a retried produce, hands out offsets that overlap ones
    # already written, and a reader then skips records a 202 acknowledged. Kafka does not.
    async with asyncio.timeout(settings.kafka_request_timeout_ms / 1000 + 10):
        await client.app[INTAKE].publisher.producer.flush()
    await own_broker.start()  # same port; memory storage, so the topics start empty
    acked.clear()

    async def accepted_again() -> bool:
        return await post(10) == 202

    await eventually(accepted_again, timeout=60, what="a 202 after the broker came back")
    assert [await post(n) for n in (1, 10, 100)] == [202, 202, 202]
    assert (await client.get("/readyz")).status == 200

    counts = Counter(r.seq for r, _ in await read_topic(settings, lambda r: r.drone_id == drone))
    assert {s: counts[s] for s in acked} == dict.fromkeys(acked, 1)
