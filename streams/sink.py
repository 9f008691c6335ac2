"""The sink: the worker's one owner of the store connection and of its Kafka producer.

A batch's outputs are written in two steps, and the order is what makes crashes harmless:
1. the store (telemetry, alert rows, finished flights) and, concurrently, the alert events,
   the finished flights, the fleet-minute partials and the dead letters on Kafka;
2. then each touched drone's new state on ``drone.latest.v1``, the topic the worker restores its
   state from.
So a state on ``drone.latest.v1`` implies its alerts are stored and published. A crash before step
2 replays the batch from the last committed offset against the older state: every write is an
idempotent upsert or carries a deterministic id, so the replay neither loses nor doubles a row.
Failed steps are retried with capped exponential backoff (the store or broker being down stalls
the stream; it never skips data). A retry resends only the messages the broker has not
acknowledged, so it never repeats an event that was delivered (a replay after a crash still may;
consumers deduplicate on (``fleet``, ``alert_id``, ``event``), as docs/topics.md says). A write
failing or hanging for longer than ``DRONETRACK_STREAMS_SINK_STALL_S`` turns /readyz red (the
``sink`` check); a telemetry write still failing after ``DRONETRACK_STREAMS_SINK_GIVE_UP_S`` ends
the worker at once (exit code 1), so that it is restarted with a new producer and consumer and
replays from its last commit instead of holding every other partition behind one that cannot be
written.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import mode
from aiokafka import AIOKafkaProducer

from dronetrack import events, kafka, topics
from dronetrack.settings import Settings
from dronetrack.store import Store
from streams import windows
from streams.metrics import StreamMetrics
from streams.process import Output
from streams.state import TopicState

log = logging.getLogger(__name__)


def stats_topic(settings: Settings) -> str:
    """The internal topic of fleet-minute partials (keyed by fleet and minute)."""
    return f"{settings.streams_worker_id}-fleet-minute"


def minute_state_topic(settings: Settings) -> str:
    """The internal compacted topic the merged fleet-minute aggregates are restored from."""
    return f"{settings.streams_worker_id}-fleet-minute-state"


def minute_states(settings: Settings) -> TopicState[windows.MinuteAgg]:
    return TopicState(settings, minute_state_topic(settings), windows.decode)


class Message(NamedTuple):
    topic: str
    value: bytes | None
    key: bytes | None
    partition: int | None = None
    headers: list[tuple[str, bytes]] | None = None


class SinkStalled(RuntimeError):
    """A write has been failing (or hanging) for too long."""


class StoreSink(mode.Service):
    """Opens the store and the producer before the app starts consuming and closes them after
    the app stopped (the Faust worker starts its extra services first and stops them last)."""

    def __init__(
        self, settings: Settings, store: Store, metrics: StreamMetrics, **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.producer: AIOKafkaProducer | None = None
        self._backoff_max = settings.streams_sink_backoff_max_ms / 1000
        self._stats_topic = stats_topic(settings)
        # Writes being attempted: their start and their last error, for /readyz.
        self._writes: dict[int, tuple[str, float, str]] = {}
        self._ids = itertools.count()
        metrics.sink_stalled.set_function(self._stalled_for)

    async def on_start(self) -> None:
        await kafka.ensure_topics(
            self.settings,
            names=(self._stats_topic, minute_state_topic(self.settings)),
            compacted={minute_state_topic(self.settings)},
        )
        await self.store.open()
        self.producer = kafka.producer(
            # A batch's messages are appended at once: lingering would only add latency.
            self.settings,
            linger_ms=0,
            max_batch_size=256 * 1024,
            client_id="dronetrack-streams",
        )
        await self.producer.start()

    async def on_stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
        await self.store.close()

    async def write(self, out: Output) -> None:
        # Built once: a retry sends what is left of the same lists (see _publish).
        events, latest = self._publish_events(out), self._publish_latest(out)
        await asyncio.gather(
            self._retry("store", lambda: self._store(out)),
            self._retry("kafka", lambda: self._publish(events)),
        )
        await self._retry("kafka", lambda: self._publish(latest))
        self._observe(out)

    async def write_minutes(self, changed: dict[str, tuple[int, windows.MinuteAgg | None]]) -> None:
        """Merged minutes to the store and to their state topic (None: a tombstone)."""
        stats = [
            windows.figures(*windows.parse_key(key.encode()), agg)
            for key, (_, agg) in changed.items()
            if agg is not None
        ]
        state_topic = minute_state_topic(self.settings)
        messages = [
            Message(
                state_topic,
                None if agg is None else windows.encode(agg),
                key.encode(),
                partition,
            )
            for key, (partition, agg) in changed.items()
        ]

        # The agent's taken batch must not be left half-written: these retry without a limit.
        await asyncio.gather(
            self._retry("store", lambda: self.store.write_fleet_stats(stats), give_up=False),
            self._retry("kafka", lambda: self._publish(messages), give_up=False),
        )

    async def stalled(self) -> None:
        """The readiness check: raises while a write has failed or hung for too long."""
        now = time.monotonic()
        for target, since, error in list(self._writes.values()):
            if now - since > self.settings.streams_sink_stall_s:
                raise SinkStalled(f"{target} write stalled for {now - since:.0f} s: {error}")

    def _stalled_for(self) -> float:
        """Seconds since the oldest write in progress began (retries included)."""
        begun = [since for _, since, _ in list(self._writes.values())]
        return time.monotonic() - min(begun) if begun else 0.0

    async def _retry(
        self, target: str, write: Callable[[], Awaitable[None]], give_up: bool = True
    ) -> None:
        delay = 0.05
        attempt = 0
        key = next(self._ids)
        begun = time.monotonic()
        self._writes[key] = (target, begun, "in progress")
        limit = self.settings.streams_sink_give_up_s if give_up else 0.0
        try:
            while True:
                start = time.perf_counter()
                try:
                    await write()
                    self.metrics.sink_seconds.labels(target).observe(time.perf_counter() - start)
                    return
                except Exception as exc:
                    attempt += 1
                    self.metrics.sink_errors.labels(target).inc()
                    self._writes[key] = (target, begun, repr(exc))
                    if limit and time.monotonic() - begun > limit:
                        log.critical(
                            "sink write failed for too long, exiting for a restart",
                            extra={"target": target, "error": repr(exc), "attempt": attempt},
                        )
                        # At once, as a crash would (the pipeline is built to survive one): a
                        # graceful stop would wait for this write and for the others retrying,
                        # and nothing unwritten has been committed, so a restart replays it.
                        os._exit(1)
                    log.warning(
                        "sink write failed, retrying",
                        extra={"target": target, "error": repr(exc), "attempt": attempt},
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff_max)
        finally:
            del self._writes[key]

    async def _store(self, out: Output) -> None:
        # One adapter call per table; the adapter batches (SQLite: one transaction each).
        await self.store.write_telemetry(out.records)
        if out.alerts:
            await self.store.write_alerts([e.to_row() for e in out.alerts])
        if out.flights:
            await self.store.write_flights([f for _, f in out.flights])

    async def _publish(self, messages: list[Message]) -> None:
        """Send the messages, then wait for every delivery. ``send`` only appends to the
        producer's batches, so they all go out in the same requests. On failure ``messages``
        is cut down to the undelivered ones before the error is raised: a retry sends only
        those, so a delivered event is never sent twice."""
        assert self.producer is not None, "sink not started"
        send = self.producer.send
        deliveries: list[asyncio.Future[object] | BaseException] = []
        broken: dict[str, BaseException] = {}  # a topic whose send failed: skip its others
        for m in messages:
            if m.topic in broken:
                deliveries.append(broken[m.topic])
                continue
            try:
                deliveries.append(
                    await send(
                        m.topic, m.value, key=m.key, partition=m.partition, headers=m.headers
                    )
                )
            except Exception as exc:  # no metadata for the topic, a full buffer...
                deliveries.append(broken.setdefault(m.topic, exc))
        results = await asyncio.gather(
            *(d for d in deliveries if not isinstance(d, BaseException)), return_exceptions=True
        )
        outcomes = iter(results)
        errors = [d if isinstance(d, BaseException) else next(outcomes) for d in deliveries]
        failed = [m for m, e in zip(messages, errors, strict=True) if isinstance(e, BaseException)]
        if failed:
            first = next(e for e in errors if isinstance(e, BaseException))
            messages[:] = failed
            raise first

    def _publish_events(self, out: Output) -> list[Message]:
        """The batch's alert events, fleet-minute partials and dead letters, to be published."""
        messages = [
            Message(topics.ALERTS, events.encode(e), e.drone_id.encode()) for e in out.alerts
        ]
        messages += [
            Message(
                topics.FLIGHTS,
                events.encode(f),
                events.drone_key(f.fleet, f.drone_id).encode(),
                partition,
            )
            for partition, f in out.flights
        ]
        messages += [
            Message(self._stats_topic, windows.encode(agg), windows.table_key(fleet, minute))
            for (fleet, minute), agg in out.partials.by_key.items()
        ]
        messages += [
            Message(topics.DEAD_LETTER, d.raw.value, d.raw.key, headers=d.headers())
            for d in out.dead
        ]
        return messages

    def _publish_latest(self, out: Output) -> list[Message]:
        return [
            Message(topics.LATEST, events.encode(state), key.encode(), partition)
            for key, (partition, state) in out.latest.items()
        ]

    def _observe(self, out: Output) -> None:
        m = self.metrics
        now_ms = time.time() * 1000
        freshness, processing = m.freshness.observe, m.processing.observe
        for rec in out.records:
            freshness(max(0.0, now_ms - rec.received_at) / 1000)
            processing(max(0.0, now_ms - rec.ts) / 1000)
        m.events.labels("stored").inc(len(out.records))
        if out.out_of_order:
            m.events.labels("out_of_order").inc(out.out_of_order)
        if out.dead:
            m.events.labels("dead_letter").inc(len(out.dead))
            for d in out.dead:
                log.error(
                    "record dead-lettered",
                    extra={
                        "partition": d.raw.partition,
                        "offset": d.raw.offset,
                        "reason": d.reason,
                    },
                )
        if out.implausible:
            m.implausible.inc(out.implausible)
        for e in out.alerts:
            m.alerts.labels(e.type, e.event).inc()
        if out.flights:
            m.flights.inc(len(out.flights))
