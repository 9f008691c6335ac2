"""Graceful shutdown under load: SIGTERM while clients are sending. Every request the service
took in gets its answer, every 202 record is on the topic, and nothing is on the topic that a
client was not told about."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from pathlib import Path

import aiohttp

from dronetrack.settings import Settings
from tests.integration.helpers import good, ingest_process, read_topic

CLIENTS = 16


async def test_sigterm_under_load_answers_every_accepted_request(
    settings: Settings, auth: dict[str, str], tmp_path: Path
) -> None:
    drone = f"drain-{uuid.uuid4().hex[:8]}"
    answered: dict[int, int] = {}  # first seq of a request -> status
    unanswered: set[int] = set()  # requests that got a connection error instead
    spans: list[tuple[float, float]] = []
    counter = iter(range(0, 10**9, 10))
    stop = asyncio.Event()
    warmed_up = asyncio.Event()
    with ingest_process(settings, tmp_path / "ingest.log") as (url, proc):
        async with aiohttp.ClientSession(headers=auth) as http:

            async def client() -> None:
                while not stop.is_set():
                    first = next(counter)
                    batch = [good(drone, first + i) for i in range(10)]
                    started = time.monotonic()
                    try:
                        async with http.post(
                            f"{url}/v1/telemetry", data=json.dumps(batch)
                        ) as response:
                            await response.read()
                            answered[first] = response.status
                            if len(answered) >= 200:
                                warmed_up.set()
                            spans.append((started, time.monotonic()))
                    except aiohttp.ClientError:
                        unanswered.add(first)
                        if proc.poll() is not None:
                            return

            clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]
            await asyncio.wait_for(warmed_up.wait(), 60)
            signalled = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 30)
            stop.set()
            await asyncio.gather(*clients)
    assert code == 0
    assert set(answered.values()) == {202}
    assert any(start < signalled < end for start, end in spans), "no request was in flight"
    on_topic = {r.seq for r, _ in await read_topic(settings, lambda r: r.drone_id == drone)}
    expected = {first + i for first in answered for i in range(10)}
    assert expected <= on_topic, "a 202 record is missing"
    assert not on_topic - expected, "a record was published without its client being answered"
