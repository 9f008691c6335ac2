"""The read cache shared by dashboard replicas: Redis when configured, in-process otherwise.

A cache only: anything in it may vanish at any moment (eviction, a Redis restart) and cost
nothing but a store read. Security state (sign-outs, failed logins) is kept in the store.

Values are encoded bytes with short TTLs. Loads are coalesced twice: concurrent requests in one
process share one in-flight load (single flight), and replicas sharing Redis elect one loader per
key with a short ``SET NX`` lock while the others wait for its value. So many open pages cost one
store read per TTL, not one per page. A failing cache is bypassed for a moment and reads go
straight to the store: the cache can make the dashboard faster, never make it fail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

Loader = Callable[[], Awaitable[bytes]]


class Backend(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl_ms: int) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def claim(self, key: str, ttl_ms: int) -> bool:
        """True if this caller should load ``key`` (no other replica is loading it)."""

    async def release(self, key: str) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class MemoryBackend:
    """One process's cache. Single flight already makes this process's loads one per key."""

    def __init__(self, max_entries: int = 10_000) -> None:
        self._entries: dict[str, tuple[float, bytes]] = {}
        self._max = max_entries

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return None
        return entry[1]

    async def set(self, key: str, value: bytes, ttl_ms: int) -> None:
        if len(self._entries) >= self._max:
            self._evict()
        self._entries[key] = (time.monotonic() + ttl_ms / 1000, value)

    def _evict(self) -> None:
        now = time.monotonic()
        for key in [k for k, (expires, _) in self._entries.items() if expires <= now]:
            del self._entries[key]
        while len(self._entries) >= self._max:  # still full of live entries: oldest go first
            del self._entries[next(iter(self._entries))]

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    async def claim(self, key: str, ttl_ms: int) -> bool:
        return True

    async def release(self, key: str) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._entries.clear()


class RedisBackend:
    """Redis through redis-py's asyncio client. The timeout bounds what an unreachable Redis
    costs (one wait per retry interval); it is not tighter because on a busy event loop a healthy
    Redis's answer can take that long to be noticed, and a false alarm bypasses the cache."""

    PREFIX = "dronetrack:dashboard:"

    def __init__(self, url: str, timeout_s: float = 1.0) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=30,
        )

    async def get(self, key: str) -> bytes | None:
        value = await self._redis.get(self.PREFIX + key)
        return value.encode() if isinstance(value, str) else value

    async def set(self, key: str, value: bytes, ttl_ms: int) -> None:
        await self._redis.set(self.PREFIX + key, value, px=ttl_ms)

    async def delete(self, key: str) -> None:
        await self._redis.delete(self.PREFIX + key)

    async def claim(self, key: str, ttl_ms: int) -> bool:
        return bool(await self._redis.set(self.PREFIX + "lock:" + key, b"1", px=ttl_ms, nx=True))

    async def release(self, key: str) -> None:
        await self._redis.delete(self.PREFIX + "lock:" + key)

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "dashboard_cache_requests_total",
            "Cache look-ups by result: hit, miss (this caller loaded), coalesced (waited for "
            "another caller's load), bypass (cache failing, read the store directly).",
            ["result"],
            registry=registry,
        )
        self.errors = Counter(
            "dashboard_cache_errors_total", "Cache operations that failed.", registry=registry
        )


class Cache:
    """``get_or_load`` with a TTL, single flight, cross-replica claims and graceful failure."""

    def __init__(
        self,
        backend: Backend,
        registry: CollectorRegistry,
        *,
        wait_s: float = 0.5,
        retry_after_s: float = 1.0,
    ) -> None:
        self.backend = backend
        self.metrics = CacheMetrics(registry)
        self._flights: dict[str, asyncio.Future[bytes]] = {}
        self._wait_s = wait_s
        self._retry_after_s = retry_after_s
        self._broken_until = 0.0
        # A shared backend is a network hop away: keep what it returned for a fraction of the
        # TTL in process too, so a busy replica asks it a few times per TTL, not per request.
        self._near = None if isinstance(backend, MemoryBackend) else MemoryBackend(1_000)

    async def get_or_load(self, key: str, ttl_ms: int, load: Loader) -> bytes:
        flight = self._flights.get(key)
        if flight is not None:
            self.metrics.requests.labels("coalesced").inc()
            return await asyncio.shield(flight)
        flight = asyncio.ensure_future(self._fetch(key, ttl_ms, load))
        self._flights[key] = flight
        flight.add_done_callback(lambda _: self._flights.pop(key, None))
        return await asyncio.shield(flight)

    async def delete(self, key: str) -> None:
        if self._near is not None:
            await self._near.delete(key)
        if not self._healthy():
            return
        try:
            await self.backend.delete(key)
        except Exception as exc:
            self._failed(exc)

    async def ping(self) -> None:
        await self.backend.ping()

    async def close(self) -> None:
        await self.backend.close()

    def _healthy(self) -> bool:
        return time.monotonic() >= self._broken_until

    def _failed(self, exc: Exception) -> None:
        self.metrics.errors.inc()
        if self._healthy():
            log.warning("cache failing; reading the store directly", extra={"error": repr(exc)})
        self._broken_until = time.monotonic() + self._retry_after_s

    async def _fetch(self, key: str, ttl_ms: int, load: Loader) -> bytes:
        near = None if self._near is None else await self._near.get(key)
        if near is not None:
            self.metrics.requests.labels("hit").inc()
            return near
        value = await self._fetch_shared(key, ttl_ms, load)
        if self._near is not None:
            await self._near.set(key, value, max(1, ttl_ms // 4))
        return value

    async def _fetch_shared(self, key: str, ttl_ms: int, load: Loader) -> bytes:
        if not self._healthy():
            self.metrics.requests.labels("bypass").inc()
            return await load()
        try:
            value = await self.backend.get(key)
            if value is not None:
                self.metrics.requests.labels("hit").inc()
                return value
            leader = await self.backend.claim(key, max(ttl_ms, int(self._wait_s * 1000)))
            if not leader:
                value = await self._await_other_loader(key)
                if value is not None:
                    self.metrics.requests.labels("coalesced").inc()
                    return value
        except Exception as exc:
            self._failed(exc)
            self.metrics.requests.labels("bypass").inc()
            return await load()
        self.metrics.requests.labels("miss").inc()
        value = await load()
        try:
            await self.backend.set(key, value, ttl_ms)
            if leader:
                await self.backend.release(key)
        except Exception as exc:
            self._failed(exc)
        return value

    async def _await_other_loader(self, key: str) -> bytes | None:
        """Another replica holds the claim: poll briefly for its value, else load ourselves."""
        deadline = time.monotonic() + self._wait_s
        while time.monotonic() < deadline:
            await asyncio.sleep(0.005)
            value = await self.backend.get(key)
            if value is not None:
                return value
        return None


def open_cache(redis_url: str, registry: CollectorRegistry) -> Cache:
    backend: Backend = RedisBackend(redis_url) if redis_url else MemoryBackend()
    return Cache(backend, registry)
