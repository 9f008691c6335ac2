"""Publishing records and waiting for their acknowledgements, batched across requests.

Records are keyed by ``drone_id`` and spread over partitions exactly as Kafka's default
partitioner would (murmur2 of the key), so one drone stays in order whichever client wrote it.

The producer keeps one produce request in flight per broker, so handing it a batch per HTTP
request would serialise requests behind each other's round trips. Instead every partition has
an open record batch that all concurrent requests append to; while a partition's batch is in
flight the next one fills, so batches grow with load and each record costs one
``BatchBuilder.append`` instead of a ``send()`` with a future of its own. Once a broker has
acknowledged everything sent to it, the next batch of each of its partitions is handed over in
the same turn of the loop, so they share one produce request. A request waits for the futures
of the batches that hold its records, and the acknowledgement deadline is one timer per batch,
not one per request: a single-record request then costs no timeout and no shield of its own.
Delivery policy (acks=all, idempotent producer, the producer's own retries) is
``dronetrack.kafka``'s; nothing here resends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.structs import TopicPartition

from dronetrack import kafka

log = logging.getLogger(__name__)

Header = tuple[str, bytes]
Message = tuple[bytes, bytes, list[Header]]  # key, value, headers (never mutated)


class NotAcknowledged(Exception):
    """The broker did not acknowledge every record before the deadline (or refused one)."""


@functools.lru_cache(maxsize=65_536)
def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for a keyed record (partition ids are 0..n-1)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class _Shared(asyncio.Future[None]):
    """A batch's outcome, awaited by every request with a record in it. A request cancelled
    while waiting (a shutdown past its drain time) must not cancel it for the others: the
    cancellation takes effect in that request once the batch settles, by its deadline at the
    latest."""

    def cancel(self, msg: Any = None) -> bool:
        return False


class _Pending:
    """A record batch being filled, and the future its writers wait on, settled with
    ``NotAcknowledged`` if the broker has not acknowledged it ``deadline_s`` after it opened."""

    __slots__ = ("builder", "done")

    def __init__(self, producer: AIOKafkaProducer, deadline_s: float) -> None:
        self.builder: Any = producer.create_batch()
        self.done = _Shared()
        timer = asyncio.get_running_loop().call_later(deadline_s, _expire, self.done, deadline_s)
        self.done.add_done_callback(lambda _: timer.cancel())


def _expire(done: asyncio.Future[None], deadline_s: float) -> None:
    _settle(done, NotAcknowledged(f"no acknowledgement within {deadline_s:g} s"))


class _Partition:
    """The batches of one partition: sealed ones in order, then the open one."""

    def __init__(self, publisher: Publisher, index: int) -> None:
        self.publisher = publisher
        self.index = index
        self.tp = TopicPartition(publisher.topic, index)
        self.sealed: deque[_Pending] = deque()
        self.open: _Pending | None = None

    def append(self, key: bytes, value: bytes, headers: list[Header]) -> asyncio.Future[None]:
        producer, deadline_s = self.publisher.producer, self.publisher.deadline_s
        if self.open is None or self.open.done.done():
            # (A batch past its deadline was answered 503 to all its writers: it is dropped.)
            self.open = _Pending(producer, deadline_s)
        if self.open.builder.append(key=key, value=value, timestamp=None, headers=headers) is None:
            if len(self.sealed) >= self.publisher.max_queued_batches:
                raise NotAcknowledged(f"partition {self.index}: too many batches waiting")
            self.sealed.append(self.open)
            self.open = _Pending(producer, deadline_s)
            if (
                self.open.builder.append(key=key, value=value, timestamp=None, headers=headers)
                is None
            ):
                raise NotAcknowledged("a record is larger than the producer's batch size")
        return self.open.done

    def next(self) -> _Pending | None:
        """The oldest batch still worth sending: one past its deadline had every writer
        answered 503 already, and its records are not sent."""
        while self.sealed:
            sealed = self.sealed.popleft()
            if not sealed.done.done():
                return sealed
        pending, self.open = self.open, None
        if pending is not None and pending.done.done():
            return None
        return pending

    def waiting(self) -> list[asyncio.Future[None]]:
        return [p.done for p in (*self.sealed, self.open) if p is not None]


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
        done.exception()  # a writer may have given up already; the error is logged by it


class Publisher:
    """``publish(messages)``: append to the partitions' open batches, wait for their acks."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic: str,
        deadline_s: float,
        max_queued_batches: int = 64,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.deadline_s = deadline_s
        self.max_queued_batches = max_queued_batches
        self._partitions: list[_Partition] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sending: Counter[int | None] = Counter()  # by leader
        self.topic_wait = kafka.TopicWait(self._topic_names, [topic])

    async def start(self) -> None:
        """Start publishing, or, with the topic missing, start waiting for it in the background:
        the service stays up and unready (``ready``) rather than die or create it."""
        if await self.topic_wait.refresh():
            self._task = asyncio.create_task(self._open_when_present(), name="await-topic")
        else:
            await self._open()

    async def ready(self) -> None:
        """Readiness: the topic exists and publishing to it has started."""
        await self.topic_wait.check()
        if not self._partitions:
            raise NotAcknowledged(f"publishing to {self.topic} is starting")

    async def _topic_names(self) -> set[str]:
        return set((await self.producer.client.fetch_all_metadata()).topics())

    async def _open_when_present(self) -> None:
        while True:
            await self.topic_wait.wait()
            try:
                return await self._open()
            except KafkaError as exc:  # the broker went away meanwhile: ask again
                log.warning("opening the topic failed", extra={"error": repr(exc)})
                await asyncio.sleep(self.topic_wait.POLL_S)

    async def _open(self) -> None:
        count = len(await self.producer.partitions_for(self.topic))
        self._partitions = [_Partition(self, p) for p in range(count)]
        self._task = asyncio.create_task(self._submit_forever(), name="publish")

    async def publish(self, messages: Sequence[Message]) -> float:
        """Send every message and wait for every ack; returns the seconds it took.
        Raises ``NotAcknowledged`` after the deadline: some records may still arrive later, which
        is why a client retries the same records and the store drops duplicates."""
        start = time.perf_counter()
        parts = self._partitions
        n = len(parts)
        if not n:  # the topic is missing
            raise NotAcknowledged(str(kafka.TopicsMissing([self.topic])))
        waits: set[asyncio.Future[None]] = set()
        for key, value, headers in messages:
            waits.add(parts[partition_for(key, n)].append(key, value, headers))
        self._wake.set()
        try:
            for done in waits:
                await done
        except KafkaError as exc:
            raise NotAcknowledged(repr(exc)) from exc
        return time.perf_counter() - start

    async def _submit_forever(self) -> None:
        """Hand the partitions' next batches to the producer a broker at a time: once every
        batch sent to a partition leader is acknowledged, the next batch of each of its
        partitions goes in the same turn of the loop. The producer keeps one request in flight
        per broker, so batches handed over together share one produce request. (Handed over
        as each partition's previous one was acknowledged, they drifted apart into requests of
        one or two batches each, and a produce request costs the client more CPU than the
        records in it.)"""
        producer, topic = self.producer, self.topic
        cluster = producer.client.cluster
        sending = self._sending
        while True:
            await self._wake.wait()
            self._wake.clear()
            busy = {node for node, count in sending.items() if count}
            for part in self._partitions:
                if part.open is None and not part.sealed:
                    continue
                leader = cluster.leader_for_partition(part.tp)
                if leader in busy or (pending := part.next()) is None:
                    continue
                pending.builder.close()
                try:
                    # Queued at once: this partition has nothing else with the producer.
                    ack = await producer.send_batch(pending.builder, topic, partition=part.index)
                except Exception as exc:  # the loop must outlive any one batch's failure
                    if not isinstance(exc, KafkaError):
                        log.exception("publishing a batch failed", extra={"partition": part.index})
                    _settle(pending.done, exc)
                    continue
                sending[leader] += 1
                ack.add_done_callback(functools.partial(self._acknowledged, leader, pending.done))

    def _acknowledged(
        self, leader: int | None, done: asyncio.Future[None], ack: asyncio.Future[Any]
    ) -> None:
        self._sending[leader] -= 1
        _settle(done, None if ack.cancelled() else ack.exception())
        self._wake.set()

    async def close(self, timeout_s: float) -> None:
        """Hand every open batch to the producer (bounded by ``timeout_s``), then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                self._wake.set()
                waiting = [done for part in self._partitions for done in part.waiting()]
                await asyncio.gather(*waiting, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
