"""Exactness through a worker crash (SIGKILL mid-stream) and through a rebalance (a second worker
joining mid-stream). Each test runs its own broker and workers, so the session worker's consumer
group and state topics are left alone."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from dronetrack import events, processes, topics
from dronetrack.broker import EmbeddedBroker, free_port
from dronetrack.record import Telemetry
from dronetrack.settings import Settings
from dronetrack.store import Store, open_store
from streams.windows import MINUTE_MS
from tests.integration.conftest import eventually
from tests.integration.streaming import expected_alerts, flight, produce, read_topic

pytestmark = pytest.mark.slow

FLEET = "resilience"
DRONES = 12
PER_DRONE = 200
CHUNKS = 10


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
        streams_worker_id="resilience",
        streams_session_timeout_ms=6_000,
        # The scripted flights alone decide the alerts: no wall-clock link_lost while the
        # test waits for a rebalance.
        streams_link_lost_after_s=3_600.0,
    )


@pytest.fixture
async def store(own_settings: Settings) -> AsyncIterator[Store]:
    s = open_store(own_settings)
    await s.open()
    yield s
    await s.close()


class Workers:
    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings, self.log_dir = settings, log_dir
        self.procs: list[tuple[subprocess.Popen[bytes], int]] = []

    def start(self) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        env = {**os.environ, **self.settings.replace(streams_web_port=port).to_env()}
        with (self.log_dir / f"worker-{len(self.procs)}.log").open("ab") as out:
            proc = processes.spawn([sys.executable, "-m", "streams"], env=env, output=out)
        self.procs.append((proc, port))
        return proc, port

    def stop_all(self) -> list[int]:
        return [processes.stop(p, 30.0) for p, _ in self.procs if p.poll() is None]


@pytest.fixture
def workers(own_settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(own_settings, tmp_path)
    yield w
    w.stop_all()


def script() -> tuple[list[Telemetry], list[list[Telemetry]]]:
    now = int(time.time() * 1000)
    t0 = now - now % MINUTE_MS - 5 * MINUTE_MS
    flights = [flight(FLEET, f"drone-{d:02d}", PER_DRONE, t0) for d in range(DRONES)]
    records = [r for step in zip(*flights, strict=True) for r in step]
    size = len(records) // CHUNKS
    return records, [records[i : i + size] for i in range(0, len(records), size)]


async def stored_count(store: Store) -> int:
    tracks = await asyncio.gather(
        *(store.track(FLEET, f"drone-{d:02d}", limit=10_000) for d in range(DRONES))
    )
    return sum(len(t) for t in tracks)


async def wait_stored(store: Store, n: int, timeout: float = 120.0) -> None:
    async def enough() -> bool:
        return await stored_count(store) >= n

    await eventually(enough, timeout=timeout, what=f"{n} records stored")


async def has_partitions(port: int) -> bool:
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as r,
        ):
            text = await r.text()
    except aiohttp.ClientError:
        return False
    return f'streams_consumer_lag{{partition="0",topic="{topics.TELEMETRY}"}}' in text or any(
        line.startswith("streams_consumer_lag{") and topics.TELEMETRY in line
        for line in text.splitlines()
    )


async def assert_exact(settings: Settings, store: Store, records: list[Telemetry]) -> None:
    """Every record stored once; every expected alert stored and published, none extra."""
    await wait_stored(store, len(records))
    for d in range(DRONES):
        points = await store.track(FLEET, f"drone-{d:02d}", limit=10_000)
        assert [p.seq for p in points] == list(range(PER_DRONE - 1, -1, -1))
    expected = expected_alerts(settings, records)
    cleared = {e.alert_id: e.at for e in expected if e.event == "cleared"}
    assert len(cleared) == DRONES * 3

    async def all_cleared() -> bool:
        rows = await store.alerts(FLEET, since_ms=0, until_ms=2**62, limit=10_000)
        return {(a.alert_id, a.cleared_at) for a in rows} == set(cleared.items())

    await eventually(all_cleared, what="exactly the expected alerts, all cleared, in the store")
    published = await read_topic(settings, topics.ALERTS, lambda m: True)
    got = {(e.alert_id, e.event) for e in (events.decode_alert(m.value) for m in published)}
    assert got == {(e.alert_id, e.event) for e in expected}, "no alert event lost or invented"


async def test_a_worker_killed_mid_stream_loses_and_doubles_nothing(
    own_settings: Settings, store: Store, workers: Workers
) -> None:
    records, chunks = script()
    first, _ = workers.start()
    sent = 0
    for chunk in chunks[:4]:
        await produce(own_settings, chunk)
        sent += len(chunk)
        await wait_stored(store, sent)
    await produce(own_settings, chunks[4])
    first.send_signal(signal.SIGKILL)  # while it works on the fifth chunk
    assert first.wait(10) == -signal.SIGKILL
    workers.start()
    for chunk in chunks[5:]:
        await produce(own_settings, chunk)
    await assert_exact(own_settings, store, records)
    assert workers.stop_all() == [0]


async def test_a_second_worker_joining_mid_stream_loses_and_doubles_nothing(
    own_settings: Settings, store: Store, workers: Workers
) -> None:
    records, chunks = script()
    workers.start()
    await produce(own_settings, chunks[0])
    await wait_stored(store, len(chunks[0]))
    _, port = workers.start()
    sent = len(chunks[0])
    rest = iter(chunks[1:])
    # Keep the stream flowing, a chunk per stored chunk, until the newcomer owns partitions.
    for chunk in rest:
        await produce(own_settings, chunk)
        sent += len(chunk)
        await wait_stored(store, sent)
        if await has_partitions(port):
            break
    await eventually(lambda: has_partitions(port), what="the second worker's partitions")
    for chunk in rest:
        await produce(own_settings, chunk)
    await assert_exact(own_settings, store, records)
    assert workers.stop_all() == [0, 0]
