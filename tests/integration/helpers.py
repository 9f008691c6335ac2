"""Helpers shared by the ingest integration tests: read the telemetry topic back, run ingest as
a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from dronetrack import processes, record, topics
from dronetrack.broker import free_port
from dronetrack.record import Telemetry
from dronetrack.settings import Settings

NOW_MS = int(time.time() * 1000)


def good(drone_id: str, i: int = 0, **changes: Any) -> dict[str, Any]:
    """A valid record of ``drone_id``, the ``i``-th of its flight, stamped near now."""
    doc: dict[str, Any] = {
        "drone_id": drone_id,
        "ts": int(time.time() * 1000) - 60_000 + i,
        "lat": 47.0 + i / 10_000,
        "lon": 8.0,
        "alt_m": 100.0,
        "speed_mps": 10.0,
        "heading_deg": 90.0,
        "battery_pct": 80.0,
        "seq": i,
    }
    doc.update(changes)
    return doc


async def read_topic(
    settings: Settings, keep: Callable[[Telemetry], bool]
) -> list[tuple[Telemetry, dict[str, bytes]]]:
    """Every record on the telemetry topic up to its current end that ``keep`` selects, with
    its headers. Everything acknowledged before the call is below the end offsets."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
    )
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata that partitions_for_topic reads
        parts = [
            TopicPartition(topics.TELEMETRY, p)
            for p in sorted(consumer.partitions_for_topic(topics.TELEMETRY) or ())
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        found = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            batches = await consumer.getmany(*parts, timeout_ms=200)
            for messages in batches.values():
                for m in messages:
                    value = record.decode_topic(m.value)
                    if keep(value):
                        found.append((value, dict(m.headers)))
        return found
    finally:
        await consumer.stop()


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"ingest exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"ingest at {url} was not ready after {timeout} s")


@contextmanager
def ingest_process(
    settings: Settings, log: Path, port: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``python -m ingest`` on ``port`` (default: a free one), ready; stopped (SIGTERM) at exit."""
    port = port or free_port()
    env = {**os.environ, **settings.replace(ingest_port=port).to_env()}
    with log.open("ab") as out:
        proc = processes.spawn([sys.executable, "-m", "ingest"], env=env, output=out)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield url, proc
    finally:
        processes.stop(proc, 30.0)
