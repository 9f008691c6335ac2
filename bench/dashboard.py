"""Load check of the dashboard: N API pollers and M live (SSE) clients against real dashboard
processes over a SQLite store that a writer keeps updating like the stream worker would.

Prints requests/s, latency, SSE events/s and the store reads/s behind them: with the cache
coalescing, store reads stay near one per key per TTL however many clients poll.

    python -m bench.dashboard --pollers 200 --sse 100 --seconds 15
    python -m bench.dashboard --replicas 2 --redis redis://127.0.0.1:6379/0

Everything runs on loopback and stops by itself. On a shared 2-core machine the load generator
competes with the servers, so the figures are noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from dronetrack import processes
from dronetrack.broker import free_port
from dronetrack.passwords import hash_password
from dronetrack.record import to_topic
from dronetrack.settings import Settings
from dronetrack.simulator import make_fleet
from dronetrack.store import User
from dronetrack.store.sqlite import SqliteStore

FLEET = "bench"
PASSWORD = secrets.token_urlsafe(16)  # a throwaway user of a throwaway store


@dataclass
class Tally:
    requests: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    sse_events: int = 0
    sse_bytes: int = 0
    sse_connected: int = 0


async def writer(store: SqliteStore, drones: int, stop: asyncio.Event) -> int:
    """Moves the fleet once a second, as the stream worker's sink would."""
    fleet = make_fleet(drones, prefix="bench")
    writes = 0
    while not stop.is_set():
        now = time.time_ns() // 1_000_000
        for d in fleet:
            d.step(1.0)
        records = [to_topic(d.report(now), FLEET, now) for d in fleet]
        await store.write_telemetry(records)
        writes += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return writes


async def poller(
    http: aiohttp.ClientSession, url: str, tally: Tally, stop: asyncio.Event, interval: float
) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        try:
            async with http.get(f"{url}/api/drones") as r:
                await r.read()
                ok = r.status == 200
        except aiohttp.ClientError:
            ok = False
        tally.latencies.append(time.perf_counter() - start)
        tally.requests += 1
        tally.errors += not ok
        if interval:
            await asyncio.sleep(interval)


async def sse_client(
    http: aiohttp.ClientSession, url: str, tally: Tally, stop: asyncio.Event
) -> None:
    try:
        async with http.get(f"{url}/api/events", timeout=aiohttp.ClientTimeout(total=None)) as r:
            tally.sse_connected += 1
            reader = asyncio.ensure_future(_count_events(r, tally))
            await stop.wait()
            reader.cancel()
    except aiohttp.ClientError:
        tally.errors += 1


async def _count_events(response: aiohttp.ClientResponse, tally: Tally) -> None:
    async for line in response.content:
        tally.sse_bytes += len(line)
        if line.startswith(b"event: "):
            tally.sse_events += 1


async def scrape(http: aiohttp.ClientSession, urls: list[str]) -> dict[str, float]:
    """Sum each metric sample over the replicas."""
    totals: dict[str, float] = {}
    for url in urls:
        async with http.get(f"{url}/metrics") as r:
            for line in (await r.text()).splitlines():
                m = re.match(r"^(dashboard_[a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$", line)
                if m:
                    totals[m[1]] = totals.get(m[1], 0.0) + float(m[2])
    return totals


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    settings = Settings.from_env({}).replace(
        sqlite_path=workdir / "store.sqlite3",
        redis_url=args.redis,
        dashboard_session_secret=secrets.token_hex(16),
        dashboard_cache_ttl_ms=args.ttl_ms,
        dashboard_refresh_ms=1000,
        log_level="WARNING",
    )
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    await store.put_user(User(name="bench", password_hash=hash_password(PASSWORD), fleets=[FLEET]))
    ports = [free_port() for _ in range(args.replicas)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    children = []
    for port in ports:
        env = {**os.environ, **settings.replace(dashboard_port=port).to_env()}
        with (workdir / f"dashboard-{port}.log").open("ab") as out:
            children.append(
                processes.spawn([sys.executable, "-m", "dashboard"], env=env, output=out)
            )
    stop = asyncio.Event()
    tally = Tally()
    connector = aiohttp.TCPConnector(limit=args.pollers + args.sse + 10)
    try:
        async with aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as http:
            for url in urls:
                await processes.wait_ready(url, name="dashboard")
            write_task = asyncio.create_task(writer(store, args.drones, stop))
            async with http.post(
                f"{urls[0]}/api/login", json={"name": "bench", "password": PASSWORD}
            ) as r:
                r.raise_for_status()
            # Replicas share the session secret and cookies ignore ports: one login serves all.
            before = await scrape(http, urls)
            tasks = [
                asyncio.create_task(sse_client(http, urls[i % len(urls)], tally, stop))
                for i in range(args.sse)
            ] + [
                asyncio.create_task(poller(http, urls[i % len(urls)], tally, stop, args.interval))
                for i in range(args.pollers)
            ]
            started = time.perf_counter()
            await asyncio.sleep(args.seconds)
            after = await scrape(http, urls)
            elapsed = time.perf_counter() - started
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            await write_task
    finally:
        for child in children:
            processes.stop(child, 10.0)
        await store.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report(args, tally, elapsed, before, after)


def report(
    args: argparse.Namespace,
    tally: Tally,
    elapsed: float,
    before: dict[str, float],
    after: dict[str, float],
) -> None:
    def delta(prefix: str) -> float:
        return sum(v - before.get(k, 0.0) for k, v in after.items() if k.startswith(prefix))

    reads = delta("dashboard_store_reads_total")
    latest_reads = delta('dashboard_store_reads_total{query="latest"}')
    lat = sorted(tally.latencies) or [0.0]
    cache = "redis" if args.redis else "in-process"
    print(
        f"dashboard load check: {args.replicas} replica(s), {cache} cache, ttl {args.ttl_ms} ms, "
        f"{args.drones} drones, {args.pollers} pollers, {args.sse} SSE clients, "
        f"{elapsed:.1f} s"
    )
    print(f"  API requests      {tally.requests:>9} ({tally.requests / elapsed:,.0f} req/s)")
    print(f"  errors            {tally.errors:>9}")
    print(
        f"  latency           p50 {statistics.median(lat) * 1000:.1f} ms, "
        f"p99 {lat[int(len(lat) * 0.99) - 1 if len(lat) > 1 else 0] * 1000:.1f} ms"
    )
    print(
        f"  SSE               {tally.sse_connected} connected, {tally.sse_events} events "
        f"({tally.sse_events / elapsed:,.0f}/s, {tally.sse_bytes / elapsed / 1e6:.2f} MB/s)"
    )
    print(
        f"  store reads       {reads:>9.0f} ({reads / elapsed:.1f}/s; "
        f"latest state {latest_reads:.0f})"
    )
    for result in ("hit", "miss", "coalesced", "bypass"):
        n = delta(f'dashboard_cache_requests_total{{result="{result}"}}')
        print(f"  cache {result:<11} {n:>9.0f}")
    served = tally.requests + tally.sse_events
    print(f"  served per store read: {served / max(reads, 1):,.0f}")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.dashboard", description=__doc__.split("\n")[0]
    )
    p.add_argument("--pollers", type=int, default=100, help="concurrent API pollers")
    p.add_argument("--sse", type=int, default=100, help="concurrent SSE clients")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--drones", type=int, default=200)
    p.add_argument("--replicas", type=int, default=1, help="dashboard processes")
    p.add_argument("--redis", default="", help="Redis URL for a shared cache (default: in-process)")
    p.add_argument("--ttl-ms", type=int, default=1000, help="cache TTL of live reads")
    p.add_argument(
        "--interval", type=float, default=0.0, help="pause between one poller's requests"
    )
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
