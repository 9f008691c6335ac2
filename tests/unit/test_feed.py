"""The telemetry feed's handling of a batch it cannot process yet: a broker error while restoring
partition state is retried (nothing is lost or skipped); anything else is a bug and surfaces."""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError

from dronetrack.settings import Settings
from streams.feed import TelemetryFeed
from streams.process import Raw
from streams.writebehind import WriteBehind

BATCH = [Raw(partition=0, offset=7, key=b"d1", value=b"{}")]


def feed(handle: object) -> TelemetryFeed:
    settings = Settings().replace(streams_sink_backoff_max_ms=1)
    return TelemetryFeed(settings, WriteBehind(), handle, lambda partitions: None)  # type: ignore[arg-type]


async def test_a_batch_is_retried_while_the_broker_is_away() -> None:
    seen: list[list[Raw]] = []
    written: list[str] = []

    async def write() -> None:
        written.append("written")

    async def handle(raws: list[Raw]) -> object:
        seen.append(raws)
        if len(seen) < 3:
            raise KafkaConnectionError("state topic unreachable")
        return write

    processed = await feed(handle)._processed(BATCH)
    assert processed is not None
    await processed()
    assert seen == [BATCH] * 3
    assert written == ["written"]


async def test_a_bug_is_not_retried() -> None:
    async def handle(raws: list[Raw]) -> object:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await feed(handle)._processed(BATCH)
