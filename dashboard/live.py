"""Live updates over Server-Sent Events.

One feed per fleet per replica polls the cached reads once per interval and fans the result out
to every open page of that fleet. A page first gets full snapshots (``drones``, ``alerts``), then
only the drones that reported since (``drones-delta``), so a large fleet costs bandwidth in
proportion to what moved. A slow client is never queued up: if it has not taken the previous
update, it gets the newest full snapshot instead, so memory stays flat and it catches up at once.
The browser's EventSource reconnects by itself; ``retry`` tells it how soon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from dashboard.reads import Reads, now_ms

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
RETRY_MS = 2_000
# How often an open stream asks whether its session may still see the fleet: signed out,
# disabled, or the fleet taken away, the stream ends within about this long.
RECHECK_S = 2.0

Allowed = Callable[[], Awaitable[bool]]

_encoder = msgspec.json.Encoder()


class Subscriber:
    def __init__(self) -> None:
        self.pending: dict[str, bytes] = {}
        self.offered: set[str] = set()  # snapshots this client has had: deltas may follow
        self.wake = asyncio.Event()
        self.closed = False

    def offer(self, event: str, data: bytes) -> None:
        self.pending[event] = data  # replaces an unsent older snapshot
        self.offered.add(event)
        self.wake.set()

    def offer_change(self, event: str, snapshot: bytes, delta: bytes) -> None:
        """A delta holds only on top of everything sent before it: a client still holding an
        unsent update gets the full snapshot in its place."""
        delta_event = event + "-delta"
        if event not in self.offered or event in self.pending or delta_event in self.pending:
            self.pending.pop(delta_event, None)
            self.offer(event, snapshot)
        else:
            self.pending[delta_event] = delta
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
        self.versions: dict[str, tuple[int, int | None]] = {}  # drone -> (ts, seq) last sent
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
        versions = {d.drone_id: (d.ts, d.seq) for d in drones}
        changed = [d for d in drones if self.versions.get(d.drone_id) != versions[d.drone_id]]
        vanished = not self.versions.keys() <= versions.keys()
        self.versions = versions
        if changed or vanished or "drones" not in self.last:
            snapshot = _encoder.encode({"now": now, "drones": drones})
            self.last["drones"] = snapshot
            delta = _encoder.encode({"now": now, "drones": changed})
            for sub in self.subscribers:
                if vanished:  # a delta cannot say "gone"
                    sub.offer("drones", snapshot)
                else:
                    sub.offer_change("drones", snapshot, delta)
        content = _encoder.encode(alerts)
        if self.content.get("alerts") != content:
            self.content["alerts"] = content
            self.last["alerts"] = data = _encoder.encode({"now": now, "alerts": alerts})
            for sub in self.subscribers:
                sub.offer("alerts", data)

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

    async def stream(
        self, request: web.Request, fleet: str, allowed: Allowed
    ) -> web.StreamResponse:
        """Serve one EventSource until the client leaves, ``allowed()`` says no (asked every
        ``RECHECK_S``: the session ended or lost the fleet) or we shut down."""
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
        written_at = time.monotonic()
        recheck_at = written_at + RECHECK_S
        try:
            while not sub.closed and not self.closing:
                events = await sub.next(max(0.0, recheck_at - time.monotonic()))
                now = time.monotonic()
                if now >= recheck_at:
                    if not await allowed():
                        break
                    recheck_at = now + RECHECK_S
                if not events and now - written_at < KEEPALIVE_S:
                    continue
                written_at = now
                if not events:
                    await response.write(b": keepalive\n\n")
                for event, data in events.items():
                    await response.write(b"event: " + event.encode() + b"\ndata: " + data + b"\n\n")
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self.unsubscribe(fleet, sub)
        return response
