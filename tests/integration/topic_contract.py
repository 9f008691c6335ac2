"""Every message on every topic, read with librdkafka (the confluent-kafka client, as analysts'
tools read them) and checked against the published contract: its value and headers against the
committed JSON Schemas in docs/schemas (by a real validator, in the dialect each document
declares), its key and partition as docs/topics.md says."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import confluent_kafka
import jsonschema
import msgspec

from dronetrack import topics
from dronetrack.settings import Settings
from streams import sink, windows

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
DLQ_HEADERS = (topics.DLQ_REASON, topics.DLQ_TOPIC, topics.DLQ_PARTITION, topics.DLQ_OFFSET)


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"


def names(settings: Settings) -> tuple[str, ...]:
    """The public topics and the worker's own fleet-minute topics."""
    return (*topics.ALL, sink.stats_topic(settings), sink.minute_state_topic(settings))


def read_all(settings: Settings, timeout: float = 60.0) -> list[Message]:
    """Every message of ``names(settings)`` up to each partition's current end, read by a
    librdkafka consumer (no group offsets are committed)."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": settings.require_kafka(),
            "group.id": "dronetrack-contract-check",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        metadata = consumer.list_topics(timeout=timeout)
        parts = [
            confluent_kafka.TopicPartition(name, p, confluent_kafka.OFFSET_BEGINNING)
            for name in names(settings)
            if name in metadata.topics
            for p in sorted(metadata.topics[name].partitions)
        ]
        ends: dict[tuple[str, int], int] = {}
        for tp in parts:
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            if high > low:
                ends[(tp.topic, tp.partition)] = high
        consumer.assign([tp for tp in parts if (tp.topic, tp.partition) in ends])
        found: list[Message] = []
        deadline = time.monotonic() + timeout
        while ends:
            assert time.monotonic() < deadline, f"librdkafka did not reach the ends of {ends}"
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                raise AssertionError(f"librdkafka consumer error: {m.error()}")
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            assert topic is not None
            assert partition is not None
            assert offset is not None
            found.append(
                Message(topic, partition, offset, m.key(), m.value(), tuple(m.headers() or ()))
            )
            if offset + 1 >= ends.get((topic, partition), 0):
                ends.pop((topic, partition), None)
        return found
    finally:
        consumer.close()


@cache
def _validator(name: str) -> Any:
    doc = json.loads((SCHEMAS / name).read_text())
    # As a tool does: the dialect the document declares, draft-07 if it declares none.
    cls = jsonschema.validators.validator_for(doc, default=jsonschema.Draft7Validator)
    cls.check_schema(doc)
    return cls(doc, format_checker=cls.FORMAT_CHECKER)


def _schema_errors(name: str, instance: object) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in _validator(name).iter_errors(instance)
    ]


def _json(value: bytes | None) -> object:
    try:
        return json.loads(value) if value is not None else None
    except (ValueError, UnicodeDecodeError):
        return _Undecodable()


class _Undecodable:
    def __repr__(self) -> str:
        return "<not JSON>"


def _header_map(m: Message) -> dict[str, object]:
    """Headers as the JSON object the header schemas describe (a repeated name: the last)."""
    out: dict[str, object] = {}
    for name, raw in m.headers:
        try:
            out[name] = raw.decode()
        except UnicodeDecodeError:
            out[name] = _Undecodable()
    return out


def problems(
    messages: Iterable[Message], settings: Settings, legacy_keys: bool = False
) -> list[str]:
    """Everything about these messages that breaks the contract, one line each. With
    ``legacy_keys``, a ``drone.latest.v1`` message keyed by ``drone_id`` alone (as before
    2026-11, see docs/topics.md) is accepted too: a test writes one on purpose."""
    check = _Check(legacy_keys)
    for m in messages:
        check.by_topic.setdefault(m.topic, []).append(m)
    check.telemetry()
    check.keyed(topics.ALERTS, "alert-event-v1.json")
    check.keyed(topics.LATEST, "latest-v1.json")
    check.keyed(topics.FLIGHTS, "flight-v1.json")
    check.dead_letters()
    check.notify_dead_letters()
    check.minutes(sink.stats_topic(settings), tombstones=False)
    check.minutes(sink.minute_state_topic(settings), tombstones=True)
    return check.found


class _Check:
    def __init__(self, legacy_keys: bool) -> None:
        self.legacy_keys = legacy_keys
        self.by_topic: dict[str, list[Message]] = {}
        self.found: list[str] = []
        # The telemetry topic's partition of each drone (fleet, drone_id).
        self.home: dict[tuple[str, str], int] = {}

    def valid(self, m: Message, schema: str, instance: object) -> bool:
        errors = _schema_errors(schema, instance)
        self.found.extend(f"{m.where()}: {schema}: {e}" for e in errors)
        return not errors

    def telemetry(self) -> None:
        dead = {
            (int(h[topics.DLQ_PARTITION]), int(h[topics.DLQ_OFFSET]))
            for h in (dict(m.headers) for m in self.by_topic.get(topics.DEAD_LETTER, []))
            if topics.DLQ_PARTITION in h and topics.DLQ_OFFSET in h
        }
        for m in self.by_topic.get(topics.TELEMETRY, []):
            value = _json(m.value)
            if _schema_errors("telemetry-v1.topic.json", value):
                # Written past ingest (a test's poison): fine once it is dead-lettered.
                if (m.partition, m.offset) not in dead:
                    self.valid(m, "telemetry-v1.topic.json", value)
                    self.found.append(f"{m.where()}: invalid and not dead-lettered")
                continue
            self.valid(m, "telemetry-v1.headers.json", _header_map(m))
            assert isinstance(value, dict)
            if m.key != value["drone_id"].encode():
                self.found.append(f"{m.where()}: key {m.key!r} is not the drone_id")
            self.home.setdefault((value["fleet"], value["drone_id"]), m.partition)

    def keyed(self, topic: str, schema: str) -> None:
        """Alerts (key ``drone_id``), latest states and flights (key ``fleet/drone_id``), each
        in the drone's partition of the telemetry topic."""
        for m in self.by_topic.get(topic, []):
            value = _json(m.value)
            if not self.valid(m, schema, value):
                continue
            assert isinstance(value, dict)
            drone = (value["fleet"], value["drone_id"])
            key = value["drone_id"] if topic == topics.ALERTS else "/".join(drone)
            if self.legacy_keys and topic == topics.LATEST and m.key == drone[1].encode():
                continue
            if m.key != key.encode():
                self.found.append(f"{m.where()}: key {m.key!r}, expected {key!r}")
            if self.home.get(drone, m.partition) != m.partition:
                self.found.append(f"{m.where()}: the drone's records are in {self.home[drone]}")

    def dead_letters(self) -> None:
        telemetry = {(m.partition, m.offset): m for m in self.by_topic.get(topics.TELEMETRY, [])}
        for m in self.by_topic.get(topics.DEAD_LETTER, []):
            headers = _header_map(m)
            if not self.valid(m, "dead-letter-v1.headers.json", headers):
                continue
            where = int(str(headers[topics.DLQ_PARTITION])), int(str(headers[topics.DLQ_OFFSET]))
            original = telemetry.get(where)
            if original is None:
                self.found.append(f"{m.where()}: no telemetry record at {where}")
                continue
            if (m.key, m.value) != (original.key, original.value):
                self.found.append(f"{m.where()}: not the original bytes of {original.where()}")
            kept = tuple(h for h in m.headers if h[0] not in DLQ_HEADERS)
            if kept != original.headers:
                self.found.append(f"{m.where()}: headers {kept!r}, originally {original.headers!r}")

    def notify_dead_letters(self) -> None:
        """Undelivered notifications: the alert event's bytes, keyed by the delivery's
        idempotency key, with the channel that refused it."""
        for m in self.by_topic.get(topics.NOTIFY_DEAD_LETTER, []):
            headers = _header_map(m)
            value = _json(m.value)
            if not self.valid(m, "notification-dead-letter-v1.headers.json", headers):
                continue
            if not self.valid(m, "alert-event-v1.json", value):
                continue
            assert isinstance(value, dict)
            fleet, _, channel = str(headers[topics.NOTIFY_CHANNEL]).partition("/")
            if fleet != value["fleet"]:
                self.found.append(
                    f"{m.where()}: channel of fleet {fleet}, event of {value['fleet']}"
                )
            key = f"{value['fleet']}/{value['alert_id']}/{value['event']}/{channel}"
            if m.key != key.encode():
                self.found.append(f"{m.where()}: key {m.key!r}, expected {key!r}")

    def minutes(self, topic: str, tombstones: bool) -> None:
        """The worker's own fleet-minute topics: internal (msgpack, no published schema), but
        they must decode."""
        for m in self.by_topic.get(topic, []):
            try:
                windows.parse_key(m.key or b"")
                if m.value is not None or not tombstones:
                    windows.decode(m.value or b"")
            except (ValueError, msgspec.DecodeError) as exc:
                self.found.append(f"{m.where()}: not a fleet-minute aggregate: {exc}")


def assert_every_topic_keeps_its_contract(settings: Settings, legacy_keys: bool = False) -> int:
    """Read everything with librdkafka and check it; the number of messages checked."""
    messages = read_all(settings)
    found = problems(messages, settings, legacy_keys)
    assert not found, f"{len(found)} contract problem(s):\n" + "\n".join(found[:50])
    return len(messages)
