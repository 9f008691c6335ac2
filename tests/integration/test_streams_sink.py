"""The sink under real failures: a store that cannot be written (a full disk) turns the worker's
/readyz red (and green again once it can) and, past the give-up time, stops the worker; a retried
publish never sends a delivered event twice. Each test runs its own broker, so the session
worker's group and topics are left alone."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import CollectorRegistry

from dronetrack import processes, topics
from dronetrack.broker import EmbeddedBroker, free_port
from dronetrack.settings import Settings
from dronetrack.store import open_store
from streams.metrics import StreamMetrics
from streams.sink import Message, StoreSink
from tests.integration.conftest import eventually
from tests.integration.streaming import flight, produce, read_topic

pytestmark = pytest.mark.slow

FLEET = "sink"


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    b = EmbeddedBroker(Settings.from_env({}), log_path=tmp_path / "broker.log")
    asyncio.run(b.start())
    yield b
    asyncio.run(b.stop())


@pytest.fixture
def own_settings(own_broker: EmbeddedBroker, tmp_path: Path) -> Settings:
    return own_broker.settings.replace(
        sqlite_path=tmp_path / "store.sqlite3",
        streams_data_dir=tmp_path / "streams",
        streams_worker_id="sink",
        streams_web_port=free_port(),
        streams_link_lost_after_s=3_600.0,
        streams_sink_stall_s=2.0,
        streams_sink_give_up_s=0.0,
    )


def start_worker(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    """A worker whose output this process writes to ``log``: the tests below limit the size of
    the files the worker may write, and its log must not be cut off by that."""
    proc = processes.spawn(
        [sys.executable, "-m", "streams"],
        env={**os.environ, **settings.to_env()},
        output=subprocess.PIPE,
    )

    def copy() -> None:
        assert proc.stdout is not None
        with log.open("ab") as out, proc.stdout:
            for line in proc.stdout:
                out.write(line)
                out.flush()

    threading.Thread(target=copy, daemon=True).start()
    return proc


@pytest.fixture
def worker(own_settings: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = start_worker(own_settings, tmp_path / "worker.log")
    yield proc
    processes.stop(proc, 30.0)


async def readyz(port: int) -> tuple[int, dict[str, Any]]:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/readyz") as r,
        ):
            return r.status, await r.json()
    except aiohttp.ClientError:
        return 0, {}


async def stored(settings: Settings, drone: str) -> int:
    store = open_store(settings)
    await store.open()
    try:
        return len(await store.track(FLEET, drone, limit=10_000))
    finally:
        await store.close()


async def test_a_store_that_cannot_be_written_turns_readyz_red_until_it_can(
    own_settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    port = own_settings.streams_web_port
    t0 = int(time.time() * 1000) - 120_000
    records = flight(FLEET, "drone-1", 40, t0)

    async def ready() -> bool:
        return (await readyz(port))[0] == 200

    await eventually(ready, timeout=60, what="the worker ready")
    await produce(own_settings, records[:20])

    async def first_half() -> bool:
        return await stored(own_settings, "drone-1") == 20

    await eventually(first_half, timeout=60, what="20 records stored")

    # The disk is full, as far as the worker can tell: the kernel refuses every write of it
    # past the first byte of a file (EFBIG; SQLite reports "database or disk is full"), while
    # reads work, so the store's ping still answers.
    soft_only = (1, resource.RLIM_INFINITY)  # the hard limit stays, so it can be lifted again
    resource.prlimit(worker.pid, resource.RLIMIT_FSIZE, soft_only)
    try:
        await produce(own_settings, records[20:])

        async def red() -> dict[str, Any] | None:
            status, body = await readyz(port)
            return body if status == 503 else None

        body = await eventually(red, timeout=30, what="/readyz 503 while the disk is full")
        assert list(body["failing"]) == ["sink"]
        assert body["failing"]["sink"].startswith("SinkStalled: store write stalled for ")
        assert await stored(own_settings, "drone-1") == 20
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as r,
        ):
            gauge = next(
                line
                for line in (await r.text()).splitlines()
                if line.startswith("streams_sink_stalled_seconds ")
            )
        assert float(gauge.split()[1]) > 2.0
    finally:
        no_limit = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        resource.prlimit(worker.pid, resource.RLIMIT_FSIZE, no_limit)

    async def all_stored() -> bool:
        return await stored(own_settings, "drone-1") == 40

    await eventually(all_stored, timeout=60, what="all 40 records stored once there is room")
    await eventually(ready, timeout=30, what="/readyz 200 again")
    assert worker.poll() is None


async def test_a_retried_publish_sends_only_what_was_not_delivered(
    own_settings: Settings,
) -> None:
    sink = StoreSink(own_settings, open_store(own_settings), StreamMetrics(CollectorRegistry()))
    await sink.on_start()
    key = f"once-{uuid.uuid4()}".encode()
    messages = [
        Message(topics.ALERTS, b"delivered", key),
        # Partition 9 of a 4-partition topic: this one can never be sent.
        Message(topics.ALERTS, b"never", key, partition=9),
    ]
    try:
        for _ in range(3):
            with pytest.raises(Exception):  # noqa: B017, PT011 - the producer's own error
                await sink._publish(messages)
    finally:
        await sink.on_stop()
    assert messages == [Message(topics.ALERTS, b"never", key, partition=9)]
    copies = await read_topic(own_settings, topics.ALERTS, lambda m: m.key == key)
    assert [m.value for m in copies] == [b"delivered"]


async def test_a_write_failing_past_the_give_up_time_stops_the_worker(
    own_settings: Settings, tmp_path: Path
) -> None:
    settings = own_settings.replace(streams_sink_give_up_s=3.0)
    proc = start_worker(settings, tmp_path / "giving-up.log")
    try:

        async def ready() -> bool:
            return (await readyz(settings.streams_web_port))[0] == 200

        await eventually(ready, timeout=60, what="the worker ready")
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
        await produce(settings, flight(FLEET, "drone-2", 5, int(time.time() * 1000) - 60_000))

        async def exited() -> int | None:
            code = proc.poll()
            return None if code is None else code + 1000  # truthy, even for exit code 0

        code = await eventually(exited, timeout=60, what="the worker to give up and exit") - 1000
    finally:
        processes.stop(proc, 10.0)
    assert code == 1

    async def said_why() -> bool:  # once the copy of its output has caught up
        log = await asyncio.to_thread((tmp_path / "giving-up.log").read_text)
        return '"msg": "sink write failed for too long, exiting for a restart"' in log

    await eventually(said_why, timeout=10, what="the reason in the worker's log")
