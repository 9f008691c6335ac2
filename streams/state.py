"""Worker state held per partition and restored from a compacted topic that is its changelog.

Why not Faust tables: a table writes one changelog message per update (about 95 µs per event
here), and its recovery did not survive a killed worker on the embedded broker. Instead:
- drone state: the worker publishes each touched drone's newest state once per batch to the
  compacted ``drone.latest.v1`` (for analysts), partitioned like ``drone.telemetry.v1``, so that
  topic is the changelog;
- fleet-minute aggregates: published once per batch to the compacted internal
  ``<worker id>-fleet-minute-state``, partitioned like the partials topic.
When the worker takes over a partition it reads that partition of the state topic to the end
before processing any record of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from aiokafka import TopicPartition

from dronetrack import events, kafka, topics
from dronetrack.events import LatestState
from dronetrack.settings import Settings

log = logging.getLogger(__name__)
V = TypeVar("V")


class TopicState(Generic[V]):
    def __init__(
        self,
        settings: Settings,
        topic: str,
        decode: Callable[[bytes], V],
        key_of: Callable[[V], str] | None = None,
    ) -> None:
        self.settings = settings
        self.topic = topic
        self.decode = decode
        # Where a value names its own key, the key is taken from it on restore, so a state
        # published under an older key format is held under the current one.
        self.key_of = key_of
        self._partitions: dict[int, dict[str, V]] = {}
        self._loading: dict[int, asyncio.Task[dict[str, V]]] = {}

    def get(self, partition: int) -> dict[str, V]:
        """A loaded partition's drones (call ``load`` first)."""
        return self._partitions[partition]

    @property
    def loaded(self) -> dict[int, dict[str, V]]:
        return self._partitions

    async def load(self, partitions: set[int]) -> None:
        """Restore every partition not yet held; concurrent callers share one read."""
        missing = partitions - self._partitions.keys()
        if not missing:
            return
        for p in missing:
            if p not in self._loading:
                self._loading[p] = asyncio.create_task(self._read(p))
        for p in missing:
            task = self._loading[p]
            try:
                loaded = await asyncio.shield(task)
            finally:
                if task.done():
                    self._loading.pop(p, None)
            self._partitions.setdefault(p, loaded)

    def forget(self, partitions: set[int]) -> None:
        """Drop partitions this worker no longer owns: a later owner may have moved them on."""
        for p in partitions:
            self._partitions.pop(p, None)
            task = self._loading.pop(p, None)
            if task is not None:
                task.cancel()

    async def _read(self, partition: int) -> dict[str, V]:
        tp = TopicPartition(self.topic, partition)
        consumer = kafka.consumer(
            self.settings, enable_auto_commit=False, max_partition_fetch_bytes=8 * 1024 * 1024
        )
        await consumer.start()
        state: dict[str, V] = {}
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            while await consumer.position(tp) < end:
                for messages in (await consumer.getmany(tp, timeout_ms=1000)).values():
                    for m in messages:
                        if m.key is None:
                            continue
                        if m.value is None:
                            state.pop(m.key.decode(), None)
                            continue
                        try:
                            value = self.decode(m.value)
                        except ValueError as exc:  # msgspec errors are ValueErrors
                            log.error(
                                "unreadable state record skipped",
                                extra={"topic": self.topic, "offset": m.offset, "error": str(exc)},
                            )
                            continue
                        key = m.key.decode() if self.key_of is None else self.key_of(value)
                        state[key] = value
        finally:
            await consumer.stop()
        log.info(
            "partition state restored",
            extra={"topic": self.topic, "partition": partition, "keys": len(state)},
        )
        return state


def drone_states(settings: Settings) -> TopicState[LatestState]:
    # Until 2026-11 the topic was keyed by drone_id alone: such states are re-keyed on restore.
    return TopicState(
        settings,
        topics.LATEST,
        events.decode_latest,
        lambda s: events.drone_key(s.fleet, s.drone_id),
    )
