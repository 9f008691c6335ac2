"""The dashboard's read cache against the real Redis on this machine (and the in-process one):
hits, expiry, coalescing under concurrency, and serving on when Redis is gone."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from dashboard.app import create_app
from dashboard.cache import Backend, Cache, MemoryBackend, RedisBackend
from dronetrack.broker import free_port
from tests.dashboard_env import Dashboard
from tests.integration.conftest import eventually

REDIS_URL = "redis://127.0.0.1:6379/0"


class Loader:
    """Counts store reads; can be held open to pile up concurrent callers."""

    def __init__(self, value: bytes = b"v") -> None:
        self.calls = 0
        self.value = value
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> bytes:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        return self.value + str(self.calls).encode()


def requests(cache: Cache, result: str) -> float:
    value: float = cache.metrics.requests.labels(result)._value.get()
    return value


@pytest.fixture(params=["redis", "memory"])
def backend_factory(request: pytest.FixtureRequest) -> Callable[[], Backend]:
    if request.param == "redis":
        return lambda: RedisBackend(REDIS_URL)
    return MemoryBackend


@pytest.fixture
async def cache(backend_factory: Callable[[], Backend]) -> AsyncIterator[Cache]:
    c = Cache(backend_factory(), CollectorRegistry())
    yield c
    await c.close()


def key() -> str:
    return f"test:{uuid.uuid4().hex}"  # the Redis is shared: never reuse another run's keys


async def test_a_second_read_is_a_hit(cache: Cache) -> None:
    load, k = Loader(), key()
    assert await cache.get_or_load(k, 5_000, load) == b"v1"
    assert await cache.get_or_load(k, 5_000, load) == b"v1"
    assert load.calls == 1
    assert requests(cache, "hit") == 1
    assert requests(cache, "miss") == 1


async def test_entries_expire_after_their_ttl(cache: Cache) -> None:
    load, k = Loader(), key()
    start = time.monotonic()
    await cache.get_or_load(k, 200, load)

    async def reloaded() -> bool:
        await cache.get_or_load(k, 200, load)
        return load.calls == 2

    await eventually(reloaded, timeout=5, what="the entry to expire")
    assert time.monotonic() - start >= 0.2


async def test_concurrent_requests_share_one_load(cache: Cache) -> None:
    load, k = Loader(), key()
    load.gate = asyncio.Event()
    readers = [asyncio.create_task(cache.get_or_load(k, 5_000, load)) for _ in range(500)]
    await eventually(lambda: _true(load.calls == 1), timeout=5, what="the first load")
    load.gate.set()
    assert set(await asyncio.gather(*readers)) == {b"v1"}
    assert load.calls == 1
    assert requests(cache, "coalesced") == 499


async def test_a_reader_leaving_does_not_cancel_the_shared_load(cache: Cache) -> None:
    load, k = Loader(), key()
    load.gate = asyncio.Event()
    first = asyncio.create_task(cache.get_or_load(k, 5_000, load))
    second = asyncio.create_task(cache.get_or_load(k, 5_000, load))
    await eventually(lambda: _true(load.calls == 1), timeout=5, what="the first load")
    first.cancel()
    load.gate.set()
    assert await second == b"v1"


async def test_replicas_sharing_redis_elect_one_loader() -> None:
    """Three dashboard processes' caches on one Redis: one store read between them."""
    replicas = [Cache(RedisBackend(REDIS_URL), CollectorRegistry()) for _ in range(3)]
    load, k = Loader(), key()
    load.gate = asyncio.Event()
    try:
        readers = [
            asyncio.create_task(c.get_or_load(k, 5_000, load)) for c in replicas for _ in range(50)
        ]
        await eventually(lambda: _true(load.calls == 1), timeout=5, what="the first load")
        load.gate.set()
        assert set(await asyncio.gather(*readers)) == {b"v1"}
        assert load.calls == 1
    finally:
        for c in replicas:
            await c.close()


async def test_redis_down_still_serves_from_the_store() -> None:
    closed_port = free_port()  # nothing listens there
    cache = Cache(RedisBackend(f"redis://127.0.0.1:{closed_port}/0"), CollectorRegistry())
    load = Loader()
    try:
        assert await cache.get_or_load("k", 1_000, load) == b"v1"
        assert await cache.get_or_load("k", 1_000, load) == b"v1", "the process still caches"
        await cache.delete("k")  # does not raise either
        assert await cache.get_or_load("k", 1_000, load) == b"v2"
        assert requests(cache, "bypass") == 2
        assert cache.metrics.errors._value.get() == 1, "then bypassed without retrying at once"
    finally:
        await cache.close()


async def test_dashboard_with_redis_down_answers_normally(dashboard: Dashboard) -> None:
    settings = dashboard.settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    server = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{server.port}", cookie_jar=jar) as http:
            await dashboard.login(http, "alice")
            for _ in range(3):
                async with http.get("/api/drones") as r:
                    assert r.status == 200
                    assert len((await r.json())["drones"]) == 3
            async with http.get("/readyz") as r:
                assert r.status == 200, "the cache is optional: not a readiness dependency"
            async with http.get("/metrics") as r:
                text = await r.text()
        assert 'dashboard_cache_requests_total{result="bypass"}' in text
    finally:
        await server.close()


async def test_dashboard_reads_the_store_once_per_ttl_for_many_pages(dashboard: Dashboard) -> None:
    settings = dashboard.settings.replace(redis_url=REDIS_URL, dashboard_cache_ttl_ms=60_000)
    server = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(f"http://127.0.0.1:{server.port}", cookie_jar=jar) as http:
            await dashboard.login(http, "carol")
            await _clear_keys("latest:bravo")

            async def page() -> int:
                async with http.get("/api/drones?fleet=bravo") as r:
                    return r.status

            assert set(await asyncio.gather(*(page() for _ in range(100)))) == {200}
            async with http.get("/metrics") as r:
                text = await r.text()
        assert 'dashboard_store_reads_total{query="latest"} 1.0' in text
    finally:
        await server.close()


async def _clear_keys(k: str) -> None:
    backend = RedisBackend(REDIS_URL)
    try:
        await backend.delete(k)
    finally:
        await backend.close()


async def _true(value: bool) -> bool:
    return value
