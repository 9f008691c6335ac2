"""Helpers for the stream worker's integration tests: a scripted flight, a producer, a topic
reader, and the expected alerts computed by the same pure state machine the worker runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord

from dronetrack import kafka, record, topics
from dronetrack.events import AlertEvent, drone_key
from dronetrack.record import Telemetry
from dronetrack.settings import Settings
from dronetrack.store import Flight
from streams.alerts import Rules, apply


def flight(fleet: str, drone_id: str, n: int, t0: int) -> list[Telemetry]:
    """Drain fast from 40% towards empty while flying (low, critical, rapid_drain), then land
    and charge (every alert clears). One record per second of event time."""
    out = []
    for i in range(n):
        draining = i < 160
        battery = max(0.0, 40 - i * 0.25) if draining else min(100.0, (i - 160) * 1.0)
        out.append(
            Telemetry(
                drone_id=drone_id,
                fleet=fleet,
                ts=t0 + i * 1000,
                received_at=int(time.time() * 1000),
                lat=47.0 + i / 10_000,
                lon=8.0,
                alt_m=100.0 if draining else 0.0,
                speed_mps=11.0 if draining else 0.0,
                heading_deg=0.0,
                battery_pct=battery,
                status="airborne" if draining else "ground",
                seq=i,
            )
        )
    return out


async def produce(
    settings: Settings, records: Iterable[Telemetry | tuple[bytes | None, bytes]]
) -> None:
    """Send records (or raw key/value pairs) keyed as ingest does, and wait for every ack."""
    producer = kafka.producer(settings, linger_ms=5)
    await producer.start()
    try:
        futures = []
        for item in records:
            if isinstance(item, Telemetry):
                # Stamp received_at at send time, as ingest does.
                r = msgspec.structs.replace(item, received_at=int(time.time() * 1000))
                key, value = r.drone_id.encode(), record.encode(r)
            else:
                key, value = item
            futures.append(await producer.send(topics.TELEMETRY, value, key=key))
        for f in futures:
            await f
    finally:
        await producer.stop()


async def read_topic(
    settings: Settings, topic: str, keep: Callable[[ConsumerRecord[bytes, bytes]], bool]
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record on ``topic`` so far (all partitions, from the beginning) that ``keep``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.require_kafka(),
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.kafka_topic_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        found: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in partitions if await consumer.position(tp) < end[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(m for m in batch if keep(m))
        return found
    finally:
        await consumer.stop()


def expected_alerts(settings: Settings, records: list[Telemetry]) -> list[AlertEvent]:
    """What the worker must emit: the state machine run over each drone's records in order."""
    rules = Rules.from_settings(settings)
    states: dict[str, Any] = {}
    out: list[AlertEvent] = []
    for r in records:
        key = drone_key(r.fleet, r.drone_id)
        new, events = apply(states.get(key), r, rules)
        if new is not None:
            states[key] = new
        out.extend(events)
    return out


def flight_alerts(fleet: str, drone_id: str, t0: int) -> list[AlertEvent]:
    """The alert events ``flight`` must cause under the default rules, worked out by hand:
    draining 15 %/min, measured from the checkpoint at 0 s once the span is 30 s; 20 % at 80 s,
    10 % at 120 s; charging from 0 % at 160 s, 13 % at 173 s, 25 % at 185 s; the drain rate over
    the window (oldest checkpoint 110 s, 12.5 %) falls to 3.6 %/min at 169 s."""
    drain = "battery draining 15.0%/min"
    low = "battery 20% at or below 20%"
    critical = "battery 10% at or below 10%"
    transitions: list[tuple[Any, Any, Any, int, int, str]] = [
        ("raised", "rapid_drain", "warning", 30_000, 30_000, drain),
        ("raised", "battery_low", "warning", 80_000, 80_000, low),
        ("raised", "battery_critical", "critical", 120_000, 120_000, critical),
        ("cleared", "rapid_drain", "warning", 30_000, 169_000, drain),
        ("cleared", "battery_critical", "critical", 120_000, 173_000, critical),
        ("cleared", "battery_low", "warning", 80_000, 185_000, low),
    ]
    return [
        AlertEvent(
            event=event,
            alert_id=f"{drone_id}:{type_}:{t0 + raised}",
            fleet=fleet,
            drone_id=drone_id,
            type=type_,
            severity=severity,
            raised_at=t0 + raised,
            at=t0 + at,
            detail=detail,
        )
        for event, type_, severity, raised, at, detail in transitions
    ]


def flight_summary(fleet: str, drone_id: str, t0: int) -> Flight:
    """The finished flight ``flight`` must make under the default rules, worked out by hand:
    airborne from 0 s, on the ground at 160 s (that record belongs to it); 160 legs of 0.0001
    degrees of latitude (0.016 degrees, 1779.1 m) at 11 m/s, 100 m up; battery 40 % to 0 %
    (15 %/min); the three raises of ``flight_alerts`` during it."""
    return Flight(
        fleet=fleet,
        drone_id=drone_id,
        flight_id=f"{fleet}/{drone_id}/{t0}",
        start=t0,
        end=t0 + 160_000,
        duration_ms=160_000,
        ended_by="landed",
        distance_m=1779.1,
        max_alt_m=100.0,
        max_speed_mps=11.0,
        battery_start_pct=40.0,
        battery_end_pct=0.0,
        battery_used_pct_per_min=15.0,
        points=161,
        alert_ids=[
            f"{drone_id}:rapid_drain:{t0 + 30_000}",
            f"{drone_id}:battery_low:{t0 + 80_000}",
            f"{drone_id}:battery_critical:{t0 + 120_000}",
        ],
    )
