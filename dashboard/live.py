"""Live updates over Server-Sent Events.

One feed per fleet per replica polls the cached reads once per interval and fans the result out
to every open page of that fleet, sending only what changed. A slow client is never queued up:
it keeps only the newest snapshot of each event, so memory stays flat and it catches up at once.
The browser's EventSource reconnects by itself; ``retry`` tells it how soon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from dashboard.reads import Reads, now_ms

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
RETRY_MS = 2_000

_encoder = msgspec.json.Encoder()


class Subscriber:
    def __init__(self) -> None:
        self.pending: dict[str, bytes] = {}
        self.wake = asyncio.Event()
        self.closed = False

    def offer(self, event: str, data: bytes) -> None:
        self.pending[event] = data  # replaces an unsent older snapshot
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()

    async def next(self, timeout: float) -> dict[str, bytes]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)
        self.wake.clear()
        events, self.pending = self.pending, {}
        return events


class FleetFeed:
    def __init__(self, fleet: str, reads: Reads, interval_s: float) -> None:
        self.fleet = fleet
        self.reads = reads
        self.interval_s = interval_s
        self.subscribers: set[Subscriber] = set()
        self.last: dict[str, bytes] = {}  # event -> newest data sent
        self.content: dict[str, bytes] = {}  # event -> its payload without the clock
        self.task: asyncio.Task[None] | None = None

    def add(self, sub: Subscriber) -> None:
        self.subscribers.add(sub)
        for event, data in self.last.items():
            sub.offer(event, data)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name=f"live:{self.fleet}")

    async def _run(self) -> None:
        while self.subscribers:
            started = time.monotonic()
            try:
                await self._poll()
            except Exception:
                log.exception("live feed poll failed", extra={"fleet": self.fleet})
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    async def _poll(self) -> None:
        drones = await self.reads.latest(self.fleet)
        alerts = await self.reads.recent_alerts(self.fleet)
        now = now_ms()
        for event, body in (
            ("drones", {"now": now, "drones": drones}),
            ("alerts", {"now": now, "alerts": alerts}),
        ):
            content = _encoder.encode(body[event])
            if self.content.get(event) == content:
                continue
            self.content[event] = content
            data = _encoder.encode(body)
            self.last[event] = data
            for sub in self.subscribers:
                sub.offer(event, data)

    async def stop(self) -> None:
        for sub in self.subscribers:
            sub.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


class LiveHub:
    def __init__(self, reads: Reads, interval_s: float, registry: CollectorRegistry) -> None:
        self.reads = reads
        self.interval_s = interval_s
        self.feeds: dict[str, FleetFeed] = {}
        self.clients = Gauge(
            "dashboard_sse_clients", "Live-update (SSE) connections open.", registry=registry
        )
        self.closing = False

    def subscribe(self, fleet: str) -> Subscriber:
        feed = self.feeds.get(fleet)
        if feed is None:
            feed = self.feeds[fleet] = FleetFeed(fleet, self.reads, self.interval_s)
        sub = Subscriber()
        feed.add(sub)
        self.clients.inc()
        return sub

    def unsubscribe(self, fleet: str, sub: Subscriber) -> None:
        self.clients.dec()
        feed = self.feeds.get(fleet)
        if feed is not None:
            feed.subscribers.discard(sub)

    async def close(self) -> None:
        """On shutdown: end every stream so the server can drain."""
        self.closing = True
        await asyncio.gather(*(feed.stop() for feed in self.feeds.values()))

    async def stream(self, request: web.Request, fleet: str, until_s: float) -> web.StreamResponse:
        """Serve one EventSource until the client leaves, the session ends or we shut down."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache, no-transform",
                "X-Accel-Buffering": "no",  # tell nginx-style proxies not to buffer the stream
            }
        )
        await response.prepare(request)
        await response.write(f"retry: {RETRY_MS}\n\n".encode())
        sub = self.subscribe(fleet)
        try:
            while not sub.closed and not self.closing and time.time() < until_s:
                events = await sub.next(KEEPALIVE_S)
                if not events:
                    await response.write(b": keepalive\n\n")
                for event, data in events.items():
                    await response.write(b"event: " + event.encode() + b"\ndata: " + data + b"\n\n")
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.unsubscribe(fleet, sub)
        return response
