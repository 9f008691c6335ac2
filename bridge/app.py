"""The MAVLink bridge's app factory: links in, a ticker that turns each vehicle's latest
position into a record at most ``bridge_rate_hz`` times a second, the on-disk queue, and the
sender to ingest; ``/healthz``, ``/readyz`` and ``/metrics`` on a small port of its own.

The hot path, top to bottom: bytes arrive on a link -> ``Fleet.feed`` parses and updates the
vehicle -> every tick ``Fleet.records`` makes the fresh positions records -> ``Spool.push``
writes them to disk -> ``Sender.run`` posts the oldest batch and forgets it on 202.

Shutdown (SIGTERM, Ctrl-C): links close, the last positions go to the queue, the sender stops;
what it had not sent waits in the queue for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from bridge import links
from bridge.decode import Fleet, drone_ids
from bridge.metrics import BridgeMetrics
from bridge.sender import Sender
from bridge.spool import Spool, lane_key
from dronetrack.settings import Settings, SettingsError
from dronetrack.web import READY_CHECKS, REGISTRY, instrument

log = logging.getLogger(__name__)

SETTINGS = web.AppKey("settings", Settings)
INGEST_FAILING_AFTER_S = 10.0


def check(settings: Settings) -> list[links.Endpoint]:
    """The links to open; refuses settings that cannot work, naming the variable."""
    try:
        endpoints = [links.Endpoint.parse(c) for c in settings.bridge_connect.split(",") if c]
        drone_ids(settings.bridge_drone_prefix, settings.bridge_drone_ids)
    except ValueError as exc:
        raise SettingsError(f"DRONETRACK_BRIDGE_CONNECT / _DRONE_IDS: {exc}") from None
    if not endpoints:
        raise SettingsError("DRONETRACK_BRIDGE_CONNECT names no link")
    if settings.bridge_rate_hz <= 0:
        raise SettingsError("DRONETRACK_BRIDGE_RATE_HZ must be above 0")
    if not 1 <= settings.bridge_batch_records <= 1_000:
        raise SettingsError("DRONETRACK_BRIDGE_BATCH_RECORDS must be 1 to 1000 (ingest's limit)")
    return endpoints


def read_token(settings: Settings) -> str:
    try:
        token = settings.bridge_token_file.read_text().strip()
    except OSError as exc:
        raise SettingsError(
            f"DRONETRACK_BRIDGE_TOKEN_FILE={settings.bridge_token_file}: {exc.strerror}"
        ) from None
    if not token:
        raise SettingsError(f"DRONETRACK_BRIDGE_TOKEN_FILE={settings.bridge_token_file} is empty")
    return token


def create_app(settings: Settings) -> web.Application:
    endpoints = check(settings)
    token = read_token(settings)
    app = web.Application()
    app[SETTINGS] = settings
    instrument(app)
    metrics = BridgeMetrics(app[REGISTRY])

    async def bridge(app: web.Application) -> AsyncIterator[None]:
        fleet = Fleet(
            metrics,
            settings.bridge_drone_prefix,
            drone_ids(settings.bridge_drone_prefix, settings.bridge_drone_ids),
        )
        spool = Spool(settings.bridge_queue_path, settings.bridge_queue_max_records)
        metrics.queue.set(spool.count)
        if spool.count:
            log.info("records waiting from before: sending them first", extra={"n": spool.count})
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            sender = Sender(
                spool=spool,
                http=http,
                url=settings.bridge_ingest_url,
                token=token,
                metrics=metrics,
                batch_records=settings.bridge_batch_records,
                backoff_max_s=settings.bridge_backoff_max_s,
            )
            flush = _flusher(fleet, spool, sender, metrics)
            closers = await _open_links(endpoints, fleet)
            tasks = [
                asyncio.create_task(_tick(flush, 1.0 / settings.bridge_rate_hz)),
                asyncio.create_task(sender.run()),
            ]
            app[READY_CHECKS].update(_checks(spool, sender))
            log.info("bridging", extra={"links": [str(e) for e in endpoints]})
            try:
                yield
            finally:
                for close in closers:
                    close()
                flush()  # the last positions wait in the queue for the next start
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                spool.close()

    app.cleanup_ctx.append(bridge)
    return app


def _flusher(
    fleet: Fleet, spool: Spool, sender: Sender, metrics: BridgeMetrics
) -> Callable[[], None]:
    def flush() -> None:
        bodies: list[tuple[int, bytes]] = []
        for drone, made in fleet.records():
            if isinstance(made, bytes):
                bodies.append((lane_key(drone), made))
            else:
                metrics.records.labels(made).inc()
        if not bodies:
            return
        dropped = spool.push(bodies)
        metrics.records.labels("queued").inc(len(bodies))
        if dropped:
            metrics.records.labels("dropped_full").inc(dropped)
            log.warning("queue full: the oldest records were dropped", extra={"n": dropped})
        metrics.queue.set(spool.count)
        sender.queued.set()

    return flush


async def _tick(flush: Callable[[], None], every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        flush()


async def _open_links(endpoints: list[links.Endpoint], fleet: Fleet) -> list[Callable[[], object]]:
    def feed(data: bytes, source: object) -> None:
        fleet.feed(data, source, time.time_ns() // 1_000_000)

    closers: list[Callable[[], object]] = []
    for endpoint in endpoints:
        if endpoint.kind == "udp":
            closers.append((await links.listen_udp(endpoint, feed)).close)
        elif endpoint.kind == "tcp":
            closers.append(asyncio.create_task(links.follow_tcp(endpoint, feed)).cancel)
        else:
            stop = threading.Event()
            links.read_serial(endpoint, feed, stop)
            closers.append(stop.set)
    return closers


def _checks(spool: Spool, sender: Sender) -> dict[str, Callable[[], Awaitable[object]]]:
    async def ingest() -> None:
        since = sender.failing_since
        if since is not None and time.monotonic() - since > INGEST_FAILING_AFTER_S:
            raise ConnectionError(
                f"ingest has not taken a batch for {time.monotonic() - since:.0f} s; "
                f"{spool.count} records wait in the queue"
            )

    async def queue() -> None:
        if spool.count >= spool.max_records:
            raise OverflowError(f"the queue is full ({spool.count} records): dropping the oldest")

    return {"ingest": ingest, "queue": queue}
