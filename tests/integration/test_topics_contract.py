"""The topics as analysts see them: read with librdkafka (confluent-kafka) from the embedded
broker, every message valid by its published schema, and dead letters that keep the original
record's headers."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid

from dronetrack import kafka, topics
from dronetrack.settings import Settings
from streams.windows import MINUTE_MS
from tests.integration import topic_contract
from tests.integration.conftest import eventually
from tests.integration.streaming import flight, produce, read_topic


async def produce_with_headers(
    settings: Settings, messages: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> list[tuple[int, int]]:
    """Send (key, value, headers) to the telemetry topic; their (partition, offset)."""
    producer = kafka.producer(settings)
    await producer.start()
    try:
        sent = [
            await (await producer.send(topics.TELEMETRY, value, key=key, headers=headers))
            for key, value, headers in messages
        ]
        return [(m.partition, m.offset) for m in sent]
    finally:
        await producer.stop()


async def test_dead_letters_keep_the_original_headers_and_add_where_and_why(
    settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    drone = f"it-{uuid.uuid4().hex[:8]}-h"
    original = [("dronetrack-late", b"1"), ("traceparent", b"00-4bf92f35-01"), ("x", b"")]
    [(partition, offset)] = await produce_with_headers(
        settings, [(drone.encode(), b"{not json", original)]
    )

    async def dead() -> list[object] | None:
        found = await read_topic(settings, topics.DEAD_LETTER, lambda m: m.key == drone.encode())
        return found or None

    [letter] = await eventually(dead, what="the dead letter")
    assert letter.value == b"{not json"
    headers = list(letter.headers)
    assert headers[:3] == original, "the original headers first, unchanged and in order"
    assert headers[3:] == [
        ("dlq.reason", headers[3][1]),
        ("dlq.topic", b"drone.telemetry.v1"),
        ("dlq.partition", str(partition).encode()),
        ("dlq.offset", str(offset).encode()),
    ]
    assert headers[3][1].startswith(b"undecodable: ")


async def test_every_topic_reads_with_librdkafka_and_keeps_its_published_contract(
    settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    """Telemetry, alerts (raised and cleared), latest states, dead letters and fleet-minute
    aggregates, all produced by the real worker, then read back by librdkafka and by aiokafka:
    the same messages, each valid."""
    fleet = f"it-{uuid.uuid4().hex[:8]}"
    now = int(time.time() * 1000)
    records = flight(fleet, f"{fleet}-a", 200, now - now % MINUTE_MS - 5 * MINUTE_MS)
    await produce(settings, records)
    await produce_with_headers(
        settings, [(f"{fleet}-p".encode(), b'{"drone_id": "x"}', [("dronetrack-late", b"1")])]
    )

    async def everything_out() -> bool:
        latest = await read_topic(
            settings, topics.LATEST, lambda m: m.key == f"{fleet}/{fleet}-a".encode()
        )
        alerts = await read_topic(settings, topics.ALERTS, lambda m: fleet.encode() in m.value)
        dead = await read_topic(
            settings, topics.DEAD_LETTER, lambda m: m.key == f"{fleet}-p".encode()
        )
        return (
            bool(dead)
            and sum(b'"cleared"' in m.value for m in alerts) == 3
            and any(b'"seq":199' in m.value for m in latest)
        )

    await eventually(everything_out, what="alerts, the last latest state and the dead letter")

    by_librdkafka = await asyncio.to_thread(topic_contract.read_all, settings)
    seen = {m.topic for m in by_librdkafka}
    assert seen >= {*topics.PIPELINE, f"{settings.streams_worker_id}-fleet-minute"}
    # legacy_keys: another test writes a drone.latest.v1 message under the pre-2026-11 key.
    assert topic_contract.problems(by_librdkafka, settings, legacy_keys=True) == []
    ours = {m.key for m in by_librdkafka if m.topic == topics.LATEST and fleet.encode() in m.key}
    assert ours == {f"{fleet}/{fleet}-a".encode()}

    for topic in topics.ALL:
        # Read after librdkafka: the same messages, maybe followed by newer ones.
        read = {(m.partition, m.offset): m for m in by_librdkafka if m.topic == topic}
        by_aiokafka = [
            m
            for m in await read_topic(settings, topic, lambda m: True)
            if (m.partition, m.offset) in read
        ]
        assert len(by_aiokafka) == len(read)
        for m in by_aiokafka:
            assert (m.key, m.value, tuple(m.headers)) == (
                read[(m.partition, m.offset)].key,
                read[(m.partition, m.offset)].value,
                read[(m.partition, m.offset)].headers,
            )
