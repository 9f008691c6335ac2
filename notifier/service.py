"""The notifier's consumer: its own group on ``drone.alerts.v1``, offsets committed by hand.

Reads alert events, looks up the fleet's channels (cached for ``notify_channels_cache_s``),
hands each event to the dispatcher and commits, about every 200 ms, the offsets before which
everything is delivered or dead-lettered. Stopping commits what is finished and leaves the
group; the events still in flight are delivered again by whoever takes the partition over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import aiohttp
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from dronetrack import events, kafka, topics
from dronetrack.events import AlertEvent
from dronetrack.settings import Settings
from dronetrack.store import Channel, Store
from notifier import deliver, secrets
from notifier.dispatch import DEAD_LETTER, Dispatcher, Job, Tracker, dead_letter_headers
from notifier.metrics import NotifierMetrics

log = logging.getLogger(__name__)
COMMIT_EVERY_S = 0.2


class Channels:
    """A fleet's channels with their secrets unsealed, read from the store now and then."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self._cache: dict[str, tuple[float, list[Channel]]] = {}
        self.secrets: dict[tuple[str, str, str], str] = {}  # (fleet, id, box) -> secret

    async def of(self, fleet: str) -> list[Channel]:
        held = self._cache.get(fleet)
        if held is not None and time.monotonic() - held[0] < self.settings.notify_channels_cache_s:
            return held[1]
        found = await self.store.channels(fleet)
        self._cache[fleet] = (time.monotonic(), found)
        return found

    def secret(self, channel: Channel) -> str:
        if not channel.secret_box:
            return ""
        key = (channel.fleet, channel.channel_id, channel.secret_box)
        if key not in self.secrets:
            self.secrets[key] = secrets.unseal(self.settings, channel.secret_box)
        return self.secrets[key]


class Notifier:
    def __init__(self, settings: Settings, store: Store, metrics: NotifierMetrics) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.channels = Channels(settings, store)
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.http: aiohttp.ClientSession | None = None
        self.dispatcher = Dispatcher(settings, self._send, self._dead_letter, metrics)
        self.trackers: dict[TopicPartition, Tracker] = {}
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        # One connection per busy channel at most (each sends one request at a time).
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1_000))
        self.producer = kafka.producer(self.settings)
        await self.producer.start()
        client = kafka.admin(self.settings)
        await client.start()
        try:
            # Where `dronetrack kafka create-topics` has not made it yet.
            await kafka.create_topics(client, kafka.topic_specs(self.settings, [DEAD_LETTER]))
        finally:
            await client.close()
        self.consumer = kafka.consumer(
            self.settings,
            group_id=self.settings.notify_group,
            enable_auto_commit=False,
            auto_offset_reset=self.settings.notify_offset_reset,
            session_timeout_ms=self.settings.streams_session_timeout_ms,
        )
        await self.consumer.start()
        self.consumer.subscribe([topics.ALERTS], listener=_Listener(self))
        self._tasks = [
            asyncio.create_task(self._consume(self.consumer), name="notify-consume"),
            asyncio.create_task(self._commit_forever(), name="notify-commit"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.dispatcher.close()
        if self.consumer is not None:
            with contextlib.suppress(Exception):
                await self.commit()
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()
        if self.http is not None:
            await self.http.close()

    async def ready(self) -> None:
        if self.consumer is None or not self.consumer.assignment():
            raise RuntimeError(f"not assigned any partition of {topics.ALERTS} yet")
        await self.store.ping()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=500)
            for tp, messages in batches.items():
                tracker = self.trackers.setdefault(tp, Tracker(tp))
                for m in messages:
                    await self._take(tracker, m.offset, m.value or b"")

    async def _take(self, tracker: Tracker, offset: int, raw: bytes) -> None:
        try:
            event = events.decode_alert(raw)
        except msgspec.ValidationError as exc:
            self.metrics.events.labels("undecodable").inc()
            log.error("alert event not decodable; skipped", extra={"error": str(exc)})
            self.dispatcher.submit(tracker, offset, raw, _NOTHING, [])
            return
        while True:
            try:
                found = await self.channels.of(event.fleet)
                break
            except Exception as exc:  # the store is down: wait, never skip an event
                log.error("channels not read; retrying", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
        wanted = [c for c in found if c.matches(event.type, event.severity)]
        self.metrics.events.labels("matched" if wanted else "unmatched").inc()
        self.dispatcher.submit(tracker, offset, raw, event, wanted)

    async def _send(self, channel: Channel, event: AlertEvent) -> deliver.Outcome:
        if channel.kind == "email":
            return await deliver.send_email(self.settings, channel, event)
        assert self.http is not None
        return await deliver.post_webhook(
            self.http,
            channel,
            self.channels.secret(channel),
            event,
            timeout_s=self.settings.notify_timeout_s,
        )

    async def _dead_letter(self, job: Job, reason: str, attempts: int) -> None:
        assert self.producer is not None
        key = deliver.idempotency_key(job.event, job.channel).encode()
        await self.producer.send_and_wait(
            DEAD_LETTER, job.raw, key=key, headers=dead_letter_headers(job, reason, attempts)
        )

    async def commit(self, only: set[TopicPartition] | None = None) -> None:
        assert self.consumer is not None
        offsets = {
            tp: OffsetAndMetadata(t.committable, "")
            for tp, t in self.trackers.items()
            if t.committable is not None and (only is None or tp in only)
        }
        if offsets:
            await self.consumer.commit(offsets)
            for tp, done in offsets.items():
                tracker = self.trackers.get(tp)
                if tracker is not None and tracker.committable == done.offset:
                    tracker.committable = None

    async def _commit_forever(self) -> None:
        while True:
            await self.dispatcher.changed.wait()
            self.dispatcher.changed.clear()
            try:
                await self.commit()
            except Exception as exc:  # a rebalance in progress: the next round commits
                log.warning("commit failed", extra={"error": str(exc)})
            await asyncio.sleep(COMMIT_EVERY_S)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Commit what is finished; the rest is delivered again by the next owner."""
        with contextlib.suppress(Exception):
            await self.notifier.commit(set(revoked))
        for tp in revoked:
            self.notifier.trackers.pop(tp, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        for tp in assigned:
            self.notifier.trackers[tp] = Tracker(tp)


_NOTHING = AlertEvent(
    event="raised",
    alert_id="",
    fleet="",
    drone_id="",
    type="battery_low",
    severity="warning",
    raised_at=0,
    at=0,
)
