"""The fleet map in a real browser (Debian's chromium through Playwright) against a dashboard
process over a SQLite store, measured with the page's Performance API:

1. live, every drone reporting at 1 Hz: main-thread time per live update (the event handler
   alone, and until the frame after it was painted) and long-task time per second;
2. live, 10 % of the drones moving each second: bytes per update against the full snapshot;
3. replay of 10 minutes of N drones at 1 Hz: bytes transferred and time until it plays, and the
   same window as per-point JSON (/api/replay, what the page fetched before) for comparison.

    python -m bench.map --drones 5000 --seconds 20 --replay-drones 1000 --replay-minutes 10

Everything runs on loopback and stops by itself; the browser, the dashboard and the writer
share the machine, so on 2 shared cores the figures are pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Page, async_playwright

from dronetrack import processes
from dronetrack.broker import free_port
from dronetrack.passwords import hash_password
from dronetrack.record import to_topic
from dronetrack.settings import Settings
from dronetrack.simulator import make_fleet
from dronetrack.store import User
from dronetrack.store.sqlite import SqliteStore

LIVE, REPLAY = "live", "replay"
PASSWORD = secrets.token_urlsafe(16)  # a throwaway user of a throwaway store
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

# Times every live event: the handler, and until a task after the next frame (its paint done).
PROBE = """
(() => {
  const bench = window.__bench = { updates: [], longtask_ms: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) bench.longtask_ms += e.duration;
  }).observe({ type: "longtask", buffered: true });
  const Original = window.EventSource;
  window.EventSource = class extends Original {
    addEventListener(type, listener, ...rest) {
      super.addEventListener(type, (e) => {
        const start = performance.now();
        listener(e);
        const sync = performance.now() - start;
        requestAnimationFrame(() => setTimeout(() => {
          const painted = performance.now() - start;
          const data = JSON.parse(e.data);  // after the timing: how many drones it carried
          const drones = Array.isArray(data.drones) ? data.drones.length : 0;
          bench.updates.push({ type, bytes: e.data.length, sync, painted, drones });
        }, 0));
      }, ...rest);
    }
  };
})();
"""


async def live_writer(store: SqliteStore, drones: int, moving: list[float], stop: Any) -> None:
    """Each second, the share ``moving[0]`` of the fleet moves and reports (the stream worker's
    sink writing); the others stay silent."""
    fleet = make_fleet(drones, prefix="d")
    tick = 0
    while not stop.is_set():
        now = time.time_ns() // 1_000_000
        count = max(1, round(len(fleet) * moving[0]))
        start = (tick * count) % len(fleet)
        chosen = (fleet + fleet)[start : start + count]
        for d in chosen:
            d.step(1.0)
        await store.write_telemetry([to_topic(d.report(now), LIVE, now) for d in chosen])
        tick += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def replay_history(store: SqliteStore, drones: int, minutes: int, end_ms: int) -> int:
    """``minutes`` of 1 Hz history of ``drones`` drones, ending at ``end_ms``."""
    fleet = make_fleet(drones, seed=11, prefix="r")
    start = end_ms - minutes * 60_000
    for second in range(minutes * 60):
        ts = start + second * 1000
        for d in fleet:
            d.step(1.0)
        await store.write_telemetry([to_topic(d.report(ts), REPLAY, ts) for d in fleet])
    return start


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def sign_in(page: Page, url: str) -> None:
    await page.goto(url)
    await page.fill("#login-name", "bench")
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await page.wait_for_selector("#login", state="hidden")


async def live_phase(page: Page, seconds: float) -> dict[str, Any]:
    await page.evaluate("window.__bench.updates = []; window.__bench.longtask_ms = 0")
    await asyncio.sleep(seconds)
    bench: dict[str, Any] = await page.evaluate("window.__bench")
    return bench


def live_report(title: str, bench: dict[str, Any], seconds: float) -> None:
    drones = [u for u in bench["updates"] if u["type"].startswith("drones")]
    sync = [u["sync"] for u in drones]
    painted = [u["painted"] for u in drones]
    snapshots = [u["bytes"] for u in drones if u["type"] == "drones"]
    deltas = [u["bytes"] for u in drones if u["type"] == "drones-delta"]
    print(f"  {title}: {len(drones)} updates ({len(snapshots)} snapshots, {len(deltas)} deltas)")
    if sync:
        print(
            f"    handler      p50 {statistics.median(sync):.1f} ms, p95 {pct(sync, 0.95):.1f} ms"
        )
        print(
            f"    to painted   p50 {statistics.median(painted):.1f} ms, "
            f"p95 {pct(painted, 0.95):.1f} ms"
        )
    print(f"    long tasks   {bench['longtask_ms'] / seconds:.0f} ms per second")
    if deltas:
        carried = statistics.mean(u["drones"] for u in drones if u["type"] == "drones-delta")
        print(
            f"    delta        mean {statistics.mean(deltas) / 1000:.1f} kB, "
            f"{carried:.0f} drones (those that reported since the update before)"
        )


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-map-"))
    settings = Settings.from_env({}).replace(
        sqlite_path=workdir / "store.sqlite3",
        dashboard_session_secret=secrets.token_hex(16),
        dashboard_refresh_ms=1000,
        # Below the refresh interval, so each 1 s poll sees the newest state (at 1000 ms a poll
        # can land just inside the previous entry's life, and updates come every 2 s).
        dashboard_cache_ttl_ms=500,
        dashboard_tile_url="",
        log_level="WARNING",
    )
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    hashed = hash_password(PASSWORD)
    await store.put_user(User(name="bench", password_hash=hashed, fleets=[LIVE, REPLAY]))
    end = time.time_ns() // 1_000_000 - 60_000
    started = time.perf_counter()
    since = await replay_history(store, args.replay_drones, args.replay_minutes, end)
    print(
        f"map bench: wrote {args.replay_drones} drones x {args.replay_minutes} min of history "
        f"in {time.perf_counter() - started:.0f} s"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **settings.replace(dashboard_port=port).to_env()}
    with (workdir / "dashboard.log").open("ab") as out:
        child = processes.spawn([sys.executable, "-m", "dashboard"], env=env, output=out)
    stop = asyncio.Event()
    moving = [1.0]
    writer = asyncio.create_task(live_writer(store, args.drones, moving, stop))
    try:
        await processes.wait_ready(url, name="dashboard")
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            await page.add_init_script(PROBE)
            await sign_in(page, f"{url}/?fleet={LIVE}")
            await page.wait_for_function(
                "n => document.body.dataset.markers >= n", arg=args.drones * 0.9, timeout=60_000
            )
            await live_bench(page, args, moving)
            stop.set()
            await writer
            transfer = await replay_bench(page, url, args, since, end)
            await browser.close()
        await point_json(url, since, end, transfer)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await writer
        processes.stop(child, 10.0)
        await store.close()
        shutil.rmtree(workdir, ignore_errors=True)


async def live_bench(page: Page, args: argparse.Namespace, moving: list[float]) -> None:
    print(f"live: {args.drones} drones, 1 s updates, {args.seconds:.0f} s per phase")
    live_report("all moving", await live_phase(page, args.seconds), args.seconds)
    moving[0] = 0.1
    await asyncio.sleep(2)  # the first update after the switch still holds everyone
    bench = await live_phase(page, args.seconds)
    live_report("10 % moving", bench, args.seconds)
    await page.reload()
    await page.wait_for_function(
        "() => window.__bench.updates.some((u) => u.type === 'drones')", timeout=60_000
    )
    snapshot = next(u for u in await page.evaluate("window.__bench.updates"))["bytes"]
    deltas = [u["bytes"] for u in bench["updates"] if u["type"] == "drones-delta"]
    if deltas:
        share = statistics.mean(deltas) / snapshot
        print(f"    snapshot     {snapshot / 1000:.1f} kB: a delta is {share:.1%} of it")


async def replay_bench(
    page: Page, url: str, args: argparse.Namespace, since: int, end: int
) -> list[int]:
    """Time until the replay plays and until all of it arrived; bytes over the wire."""
    print(f"replay: {args.replay_drones} drones, {args.replay_minutes} min at 1 Hz")
    frm = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since / 1000))
    to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(end / 1000 + 1))
    t = time.perf_counter()
    await page.goto(f"{url}/?fleet={REPLAY}&from={frm}&to={to}&speed=10")
    await page.wait_for_function(
        "() => typeof state !== 'undefined' && state.replay && state.replay.started "
        "&& Number(document.body.dataset.markers) > 0",
        timeout=120_000,
    )
    playing = time.perf_counter() - t
    await page.wait_for_function(
        "() => state.replay.loadedUntil >= state.replay.to", timeout=300_000
    )
    loaded = time.perf_counter() - t
    transfer: list[int] = await page.evaluate(
        """() => performance.getEntriesByType("resource")
            .filter((e) => e.name.includes("/api/replay/columns"))
            .reduce((a, e) => [a[0] + e.transferSize, a[1] + e.decodedBodySize], [0, 0])"""
    )
    print(f"    playing after {playing:.2f} s (page load included), all in {loaded:.1f} s")
    print(
        f"    columns      {transfer[0] / 1e6:.2f} MB transferred "
        f"({transfer[1] / 1e6:.2f} MB before gzip)"
    )
    return transfer


async def point_json(url: str, since: int, end: int, transfer: list[int]) -> None:
    """The same window as per-point JSON, uncompressed: what the page fetched before."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(f"{url}/api/login", json={"name": "bench", "password": PASSWORD}) as r:
            r.raise_for_status()
        t = time.perf_counter()
        async with http.get(
            f"{url}/api/replay?fleet={REPLAY}&since={since}&until={end + 1000}",
            headers={"Accept-Encoding": "identity"},
        ) as r:
            size = len(await r.read())
        print(
            f"    point JSON   {size / 1e6:.2f} MB in {time.perf_counter() - t:.1f} s "
            f"(/api/replay uncompressed): columns transfer {transfer[0] / size:.1%} of it"
        )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.map", description=__doc__.split("\n")[0])
    p.add_argument("--drones", type=int, default=5000, help="live fleet size")
    p.add_argument("--seconds", type=float, default=20.0, help="length of each live phase")
    p.add_argument("--replay-drones", type=int, default=1000)
    p.add_argument("--replay-minutes", type=int, default=10)
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
