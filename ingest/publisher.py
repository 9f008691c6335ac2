"""Publishing a request's records and waiting for every acknowledgement.

Records are keyed by ``drone_id`` and spread over partitions exactly as Kafka's default
partitioner would (murmur2 of the key), so one drone stays in order whichever client wrote it.
A batch is grouped by partition and handed to the producer as ready-made record batches
(``send_batch``), which costs the client far less CPU per record than one ``send()`` each.
Delivery policy (acks=all, idempotent producer, the producer's own retries) is
``dronetrack.kafka``'s; nothing here resends.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

Header = tuple[str, bytes]
Message = tuple[bytes, bytes, list[Header]]  # key, value, headers (never mutated)


class NotAcknowledged(Exception):
    """The broker did not acknowledge every record before the deadline (or refused one)."""


@functools.lru_cache(maxsize=65_536)
def partition_for(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for a keyed record (partition ids are 0..n-1)."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class Publisher:
    def __init__(self, producer: AIOKafkaProducer, topic: str, deadline_s: float) -> None:
        self.producer = producer
        self.topic = topic
        self.deadline_s = deadline_s
        self._partitions = 0

    async def start(self) -> None:
        self._partitions = len(await self.producer.partitions_for(self.topic))

    def _partition_count(self) -> int:
        known = self.producer.client.cluster.partitions_for_topic(self.topic)
        if known:
            self._partitions = len(known)
        return self._partitions

    async def publish(self, messages: Sequence[Message]) -> float:
        """Send every message and wait for every ack; returns the seconds it took.
        Raises ``NotAcknowledged`` after the deadline: some records may still arrive later, which
        is why a client retries the same records and the store drops duplicates."""
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.deadline_s):
                acks = await self._send(messages)
                await asyncio.gather(*acks)
        except (KafkaError, TimeoutError) as exc:
            raise NotAcknowledged(repr(exc)) from exc
        return time.perf_counter() - start

    async def _send(self, messages: Sequence[Message]) -> list[asyncio.Future[object]]:
        producer = self.producer
        if len(messages) == 1:
            key, value, headers = messages[0]
            return [await producer.send(self.topic, value, key=key, headers=headers or None)]
        partitions = self._partition_count()
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            by_partition.setdefault(partition_for(message[0], partitions), []).append(message)
        acks = []
        for partition, group in by_partition.items():
            batch = producer.create_batch()
            for key, value, headers in group:
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    acks.append(await producer.send_batch(batch, self.topic, partition=partition))
                    batch = producer.create_batch()
                    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                        raise NotAcknowledged("a record is larger than the producer's batch")
            acks.append(await producer.send_batch(batch, self.topic, partition=partition))
        return acks
