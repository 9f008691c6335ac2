"""``python -m bench.notifier``: what one notifier process delivers.

1. throughput: ``--events`` alert events of ``--fleets`` fleets (one signed webhook channel
   each, no rate cap) wait on ``drone.alerts.v1``; a notifier process starts and delivers them
   to a local aiohttp receiver. Prints events/s from the first delivery to the last.
2. latency: events are produced at half that rate for ``--seconds``, each stamped with the time
   it was produced; prints p50/p99/max from the alert being raised to the receiver having it.

The broker, the notifier and this process (producer and receiver) share the machine's cores:
the figures are a lower bound of what a notifier does with a core of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
from aiohttp import web
from aiokafka import AIOKafkaProducer

from bench.ingest import cpu_seconds
from dronetrack import events, kafka, processes, topics
from dronetrack.broker import EmbeddedBroker, free_port
from dronetrack.events import AlertEvent
from dronetrack.settings import Settings
from dronetrack.store import Channel
from dronetrack.store.sqlite import SqliteStore
from notifier import secrets


class Receiver:
    def __init__(self) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.latencies_ms: list[float] = []
        self.expect = 0
        self.done = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        body = msgspec.json.decode(await request.read())
        now = time.time()
        self.count += 1
        if self.count == 1:
            self.first = now
        self.last = now
        if body["detail"] == "latency":
            self.latencies_ms.append(now * 1000 - body["at"])
        if self.count >= self.expect:
            self.done.set()
        return web.Response(status=204)


def alert(fleet: str, n: int, at: int, detail: str) -> AlertEvent:
    return AlertEvent(
        event="raised",
        alert_id=f"d{n % 50}:battery_low:{at}-{n}",
        fleet=fleet,
        drone_id=f"d{n % 50}",
        type="battery_low",
        severity="warning",
        raised_at=at,
        at=at,
        detail=detail,
    )


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def add_channels(settings: Settings, fleets: list[str], port: int) -> None:
    """One signed webhook channel per fleet, each with a secret of its own."""
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    for fleet in fleets:
        await store.put_channel(
            Channel(
                fleet=fleet,
                channel_id="hook",
                kind="webhook",
                target=f"http://127.0.0.1:{port}/{fleet}",
                created_at=0,
                secret_box=secrets.seal(settings, secrets.new_secret()),
            )
        )
    await store.close()


async def latency(
    producer: AIOKafkaProducer,
    receiver: Receiver,
    *,
    pid: int,
    fleets: list[str],
    half: float,
    seconds: float,
) -> None:
    """Events produced at ``half`` a second, each stamped with its time; delivery latency."""
    total = int(half * seconds)
    receiver.done.clear()
    receiver.expect = receiver.count + total
    cpu0, start = cpu_seconds(pid), time.monotonic()
    for n in range(total):
        delay = start + n / half - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        a = alert(fleets[n % len(fleets)], n, time.time_ns() // 1_000_000, "latency")
        await producer.send(topics.ALERTS, events.encode(a), key=a.drone_id.encode())
    await asyncio.wait_for(receiver.done.wait(), 600)
    cores = (cpu_seconds(pid) - cpu0) / (time.monotonic() - start)
    lat = receiver.latencies_ms
    print(
        f"latency at {half:,.0f} events/s for {seconds:.0f} s ({len(lat)} events):"
        f" p50 {percentile(lat, 0.5):.0f} ms, p99 {percentile(lat, 0.99):.0f} ms,"
        f" max {max(lat):.0f} ms; notifier CPU {cores:.2f} cores",
        flush=True,
    )


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-notifier-"))
    broker = EmbeddedBroker(Settings.from_env({}), log_path=workdir / "broker.log")
    await broker.start()
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/{fleet}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    settings = broker.settings.replace(
        sqlite_path=workdir / "store.sqlite3",
        notify_port=free_port(),
        notify_group=f"bench-{uuid.uuid4().hex[:8]}",
        notify_offset_reset="earliest",
        notify_secret_key=secrets.new_key(),
        notify_rate_per_s=0.0,
        log_level="WARNING",
    )
    fleets = [f"fleet-{i}" for i in range(args.fleets)]
    await add_channels(settings, fleets, port)
    producer = kafka.producer(settings, linger_ms=5)
    await producer.start()
    with (workdir / "notifier.log").open("ab") as log:
        proc = processes.spawn(
            [sys.executable, "-m", "notifier"], env={**os.environ, **settings.to_env()}, output=log
        )
    try:
        print(f"# logs in {workdir}", flush=True)
        await processes.wait_ready(f"http://127.0.0.1:{settings.notify_port}", proc, "notifier")
        receiver.expect = args.events
        cpu0, own0 = cpu_seconds(proc.pid), cpu_seconds(os.getpid())
        now = time.time_ns() // 1_000_000
        for n in range(args.events):
            a = alert(fleets[n % len(fleets)], n, now, "throughput")
            await producer.send(topics.ALERTS, events.encode(a), key=a.drone_id.encode())
        await producer.flush()
        await asyncio.wait_for(receiver.done.wait(), 600)
        wall = receiver.last - receiver.first
        rate = (args.events - 1) / wall
        per_event_us = (cpu_seconds(proc.pid) - cpu0) / args.events * 1e6
        own_us = (cpu_seconds(os.getpid()) - own0) / args.events * 1e6
        print(
            f"throughput: {args.events} events to {args.fleets} webhook channels in {wall:.2f} s:"
            f" {rate:,.0f} events/s; notifier CPU {per_event_us:.0f} us an event"
            f" (one core: {1e6 / per_event_us:,.0f} events/s); producer and receiver"
            f" {own_us:.0f} us an event; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )

        await latency(
            producer, receiver, pid=proc.pid, fleets=fleets, half=rate / 2, seconds=args.seconds
        )
    finally:
        processes.stop(proc, 30.0)
        await producer.stop()
        await runner.cleanup()
        await broker.stop()


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--fleets", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
