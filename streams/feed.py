"""The hot path: ``drone.telemetry.v1`` read in batches by an aiokafka consumer group.

Faust hands an agent one message at a time, and that costs about 150-250 µs of CPU per event on
this kind of machine whatever the batching on top (docs/streams.md, "Where a worker's time
goes"); a consumer's ``getmany`` costs about 5 µs. So the telemetry topic, nearly all of the
worker's input, is read here, in the worker process, by a consumer group named after the worker
(``DRONETRACK_STREAMS_WORKER_ID``, the group autoscaling and lag alerts watch). Faust keeps the
rest: the worker's lifecycle, the fleet-minute agent and the link-lost timer.

Offsets are committed by hand, each batch's only after its writes finished (streams.writebehind
keeps one batch's writes in flight while the next is processed). A revoked partition first sees
the writes in flight finish and their offsets committed, then its state is forgotten; stopping
does the same before leaving the group. So a crash replays at most the batches after the last
commit, and every write being idempotent, the replay neither loses nor doubles anything.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import mode
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError

from dronetrack import kafka, topics
from dronetrack.settings import Settings
from streams.process import Raw
from streams.writebehind import WriteBehind

log = logging.getLogger(__name__)

# Process a batch (decode, advance state) and return its writes, to be started once the previous
# batch's writes finished (see WriteBehind.submit).
Write = Callable[[], Awaitable[None]]
Handler = Callable[[list[Raw]], Awaitable[Write]]


class TelemetryFeed(mode.Service):
    def __init__(
        self,
        settings: Settings,
        behind: WriteBehind,
        handle: Handler,
        revoked: Callable[[set[int]], None],
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.settings = settings
        self.behind = behind
        self._handle = handle
        self._revoked = revoked
        self.consumer: AIOKafkaConsumer | None = None
        # Next offset to process per partition (what lag is measured from).
        self.position: dict[int, int] = {}
        self._loop_task: asyncio.Future[None] | None = None
        self._backoff_max = settings.streams_sink_backoff_max_ms / 1000
        # The worker reads or writes every pipeline topic: it starts once they all exist.
        self.topic_wait = kafka.TopicWait(self._topic_names, topics.PIPELINE)
        self.subscribed = False

    async def on_start(self) -> None:
        session_ms = self.settings.streams_session_timeout_ms
        self.consumer = kafka.consumer(
            self.settings,
            group_id=self.settings.streams_worker_id,
            client_id=f"{self.settings.streams_worker_id}-telemetry",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(session_ms // 10, 100),
            rebalance_timeout_ms=session_ms,
            max_poll_interval_ms=max(300_000, session_ms),
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        await self.consumer.start()
        # A failure the loop does not handle crashes the worker (mode's add_future), so the
        # orchestrator restarts it rather than leaving it up and idle.
        self._loop_task = self.add_future(self._run(self.consumer))

    async def on_stop(self) -> None:
        if self._loop_task is not None:
            # should_stop is set: the loop ends after the batch at hand (or its next fetch
            # wait), without being cancelled halfway through one.
            await asyncio.gather(self._loop_task, return_exceptions=True)
        async with self.behind.quiesced():
            pass  # the last batch's writes and commit are done
        if self.consumer is not None:
            await self.consumer.stop()  # leaves the group: the partitions move at once

    async def topics_ready(self) -> None:
        """Readiness: the topics exist (else TopicsMissing names them and the command that
        creates them) and the feed has subscribed."""
        await self.topic_wait.check()
        if not self.subscribed:
            raise RuntimeError("the telemetry feed is starting")

    async def _topic_names(self) -> set[str]:
        if self.consumer is None:
            raise RuntimeError("the telemetry feed has not started")
        return set(await self.consumer.topics())

    async def lag(self) -> dict[int, int]:
        """Records behind the end, per assigned partition (from its next offset to process)."""
        consumer = self.consumer
        if consumer is None:
            return {}
        lags = {}
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)  # known after the partition's first fetch
            if highwater is None:
                continue
            position = self.position.get(tp.partition)
            if position is None:  # nothing processed here yet: where the consumer starts
                try:
                    position = await consumer.position(tp)
                except IllegalStateError:  # revoked meanwhile
                    continue
            lags[tp.partition] = max(0, highwater - position)
        return lags

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        # Up and unready until the topics exist: subscribing to a missing topic would create it
        # with the broker's defaults where auto-creation is on, or idle silently where it is off.
        if not await self.topic_wait.wait(self.sleep, lambda: self.should_stop):
            return
        consumer.subscribe([topics.TELEMETRY], listener=_Listener(self))
        self.subscribed = True
        window_ms = self.settings.streams_batch_window_ms
        batch_max = self.settings.streams_batch_max
        while not self.should_stop:
            fetched = await consumer.getmany(timeout_ms=window_ms, max_records=batch_max)
            raws = [
                Raw(
                    m.partition,
                    m.offset,
                    m.key,
                    m.value if m.value is not None else b"",
                    m.headers,
                )
                for messages in fetched.values()
                for m in messages
            ]
            if not raws:
                continue
            offsets = {tp: messages[-1].offset + 1 for tp, messages in fetched.items() if messages}
            async with self.behind.lock:
                write = await self._processed(raws)
                if write is None:
                    return  # stopping while the broker is away: a restart replays the batch
                for tp, offset in offsets.items():
                    self.position[tp.partition] = offset
                await self.behind.submit(self._write_then_commit(consumer, write, offsets))

    async def _processed(self, raws: list[Raw]) -> Write | None:
        """The batch processed, retried with backoff while it fails (restoring a partition's
        state needs the broker; nothing is changed by a failed attempt), or None on stopping."""
        delay = 0.05
        while not self.should_stop:
            try:
                return await self._handle(raws)
            except KafkaError as exc:
                log.warning("processing a batch failed, retrying", extra={"error": repr(exc)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff_max)
        return None

    async def _write_then_commit(
        self,
        consumer: AIOKafkaConsumer,
        write: Write,
        offsets: dict[TopicPartition, int],
    ) -> None:
        await write()
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:
            # The partitions moved on (a rebalance): their new owner replays from the last
            # commit, and the writes being idempotent, the replay changes nothing.
            log.warning("offset commit failed", extra={"error": repr(exc)})


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, feed: TelemetryFeed) -> None:
        self.feed = feed

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.feed.behind.quiesced():
            partitions = {tp.partition for tp in revoked}
            for p in partitions:
                self.feed.position.pop(p, None)
            self.feed._revoked(partitions)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = sorted(tp.partition for tp in assigned)
        log.info("partitions assigned", extra={"topic": topics.TELEMETRY, "partitions": partitions})
