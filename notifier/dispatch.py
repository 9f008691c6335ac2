"""From alert events to deliveries, at least once, without one receiver holding up another.

Each channel has its own queue and task: its events go out one at a time in the order they were
read (so an alert's raise is delivered before its clear), at most ``notify_rate_per_s`` a second;
a slow or dead receiver only ever delays its own channel. A failed attempt is retried with
exponential backoff and full jitter; after ``notify_max_attempts`` (or at once when the receiver
says the request can never succeed) the event goes to the notifications dead-letter topic with
the reason. An offset is committed only when the event at it and every one before it on its
partition is delivered or dead-lettered (``Tracker``), so a crash at any moment loses nothing
and at worst delivers an event again, with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from dronetrack import topics
from dronetrack.events import AlertEvent
from dronetrack.settings import Settings
from dronetrack.store import Channel
from ingest.ratelimit import RateLimiter
from notifier.deliver import Outcome
from notifier.metrics import NotifierMetrics

log = logging.getLogger(__name__)

DEAD_LETTER = topics.NOTIFY_DEAD_LETTER
NOTIFY_CHANNEL = topics.NOTIFY_CHANNEL
NOTIFY_ATTEMPTS = topics.NOTIFY_ATTEMPTS

Send = Callable[[Channel, AlertEvent], Awaitable[Outcome]]
DeadLetter = Callable[["Job", str, int], Awaitable[None]]


@dataclass(eq=False)
class Tracker:
    """The events of one partition still being delivered, in offset order: the committable
    offset is one past the last event before which everything is finished."""

    partition: TopicPartition
    pending: deque[list[int]] = field(default_factory=deque)  # [offset, deliveries left]
    committable: int | None = None

    def add(self, offset: int, deliveries: int) -> list[int]:
        entry = [offset, deliveries]
        self.pending.append(entry)
        self._advance()
        return entry

    def finish(self, entry: list[int]) -> None:
        entry[1] -= 1
        self._advance()

    def _advance(self) -> None:
        while self.pending and self.pending[0][1] <= 0:
            self.committable = self.pending.popleft()[0] + 1

    def __len__(self) -> int:
        return len(self.pending)


@dataclass(eq=False)
class Job:
    channel: Channel
    event: AlertEvent
    raw: bytes
    tracker: Tracker
    entry: list[int]
    offset: int


class Dispatcher:
    def __init__(
        self, settings: Settings, send: Send, dead_letter: DeadLetter, metrics: NotifierMetrics
    ) -> None:
        self.settings = settings
        self.send = send
        self.dead_letter = dead_letter
        self.metrics = metrics
        self.limiter = RateLimiter(settings.notify_rate_per_s, settings.notify_rate_burst)
        self.queues: dict[tuple[str, str], asyncio.Queue[Job]] = {}
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.changed = asyncio.Event()  # a tracker's committable offset may have moved
        self._background: set[asyncio.Task[None]] = set()

    def submit(
        self, tracker: Tracker, offset: int, raw: bytes, event: AlertEvent, channels: list[Channel]
    ) -> None:
        """Queue one event for each of its channels (none: it is finished at once)."""
        entry = tracker.add(offset, len(channels))
        if not channels:
            self.changed.set()
        for channel in channels:
            key = (channel.fleet, channel.channel_id)
            queue = self.queues.get(key)
            if queue is None:
                queue = self.queues[key] = asyncio.Queue()
                self.tasks[key] = asyncio.create_task(self._serve(queue), name=f"notify:{key}")
            job = Job(channel, event, raw, tracker, entry, offset)
            if queue.qsize() >= self.settings.notify_channel_queue_max:
                task = asyncio.create_task(self._give_up(job, "channel backlog full", 0))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
                continue
            queue.put_nowait(job)

    def backlog(self) -> int:
        return sum(q.qsize() for q in self.queues.values())

    async def _serve(self, queue: asyncio.Queue[Job]) -> None:
        while True:
            job = await queue.get()
            try:
                await self._deliver(job)
            except Exception:  # a bug must not silently stop a channel forever
                log.exception("delivery crashed", extra={"channel": job.channel.channel_id})
                await self._give_up(job, "notifier error", 0)

    def backoff_s(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^(attempt-1))]."""
        s = self.settings
        ceiling = min(s.notify_backoff_max_ms, s.notify_backoff_base_ms * 2 ** (attempt - 1))
        return random.uniform(0, ceiling) / 1000

    async def _deliver(self, job: Job) -> None:
        kind = job.channel.kind
        key = f"{job.channel.fleet}/{job.channel.channel_id}"
        outcome = Outcome("failed", "no attempt")
        for attempt in range(1, self.settings.notify_max_attempts + 1):
            wait = self.limiter.take(key, 1)
            while wait > 0:
                await asyncio.sleep(wait)
                wait = self.limiter.take(key, 1)
            outcome = await self.send(job.channel, job.event)
            if outcome.result == "ok":
                self.metrics.attempts.labels(kind, "ok").inc()
                self.metrics.deliveries.labels(kind, "delivered").inc()
                self.metrics.latency.labels(kind).observe(
                    max(0.0, time.time() - job.event.at / 1000)
                )
                self._finish(job)
                return
            self.metrics.attempts.labels(kind, outcome.result).inc()
            log.warning(
                "delivery failed",
                extra={
                    "channel": key,
                    "alert_id": job.event.alert_id,
                    "attempt": attempt,
                    "reason": outcome.reason,
                },
            )
            if outcome.result == "failed" or attempt == self.settings.notify_max_attempts:
                break
            await asyncio.sleep(self.backoff_s(attempt))
        await self._give_up(job, outcome.reason, attempt)

    async def _give_up(self, job: Job, reason: str, attempts: int) -> None:
        """Dead-letter the event (retrying the produce until it is acknowledged), then finish."""
        while True:
            try:
                await self.dead_letter(job, reason, attempts)
                break
            except Exception as exc:
                log.error("dead letter not written; retrying", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
        self.metrics.deliveries.labels(job.channel.kind, "dead_lettered").inc()
        self._finish(job)

    def _finish(self, job: Job) -> None:
        job.tracker.finish(job.entry)
        self.changed.set()

    async def close(self) -> None:
        every = [*self.tasks.values(), *self._background]
        for task in every:
            task.cancel()
        for task in every:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def dead_letter_headers(job: Job, reason: str, attempts: int) -> list[tuple[str, bytes]]:
    return [
        (topics.DLQ_REASON, reason.encode()),
        (topics.DLQ_TOPIC, topics.ALERTS.encode()),
        (topics.DLQ_PARTITION, str(job.tracker.partition.partition).encode()),
        (topics.DLQ_OFFSET, str(job.offset).encode()),
        (NOTIFY_CHANNEL, f"{job.channel.fleet}/{job.channel.channel_id}".encode()),
        (NOTIFY_ATTEMPTS, str(attempts).encode()),
    ]
