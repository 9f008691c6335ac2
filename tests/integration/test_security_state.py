"""Security state outlives the cache: a signed-out cookie stays refused and a throttled name
stays throttled when Redis forgets everything it held (eviction under memory pressure, or a
restart: Redis here keeps nothing on disk)."""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import shutil
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from dashboard.app import create_app
from dronetrack.broker import free_port
from dronetrack.passwords import fingerprint
from tests.dashboard_env import PASSWORD, Dashboard
from tests.integration.conftest import eventually


@pytest.fixture
async def own_redis() -> AsyncIterator[Redis]:
    """A Redis of this test's own, configured as compose.yaml's, free to be flushed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server on PATH (apt-get install redis-server)")
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru",
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    redis = Redis.from_url(f"redis://127.0.0.1:{port}/0")

    async def answers() -> bool:
        try:
            return bool(await redis.ping())
        except RedisConnectionError:
            return False

    try:
        await eventually(answers, timeout=20, what="redis-server to answer")
        yield redis
    finally:
        await redis.aclose()
        proc.terminate()
        await proc.wait()


async def replicas(dashboard: Dashboard, redis: Redis, n: int, **over: object) -> list[TestServer]:
    kwargs = redis.connection_pool.connection_kwargs
    url = f"redis://{kwargs['host']}:{kwargs['port']}/0"
    settings = dashboard.settings.replace(redis_url=url, **over)
    servers = [
        TestServer(create_app(settings), host="127.0.0.1", port=free_port()) for _ in range(n)
    ]
    for server in servers:
        await server.start_server()
    return servers


async def test_a_signed_out_cookie_stays_refused_when_redis_forgets_everything(
    dashboard: Dashboard, own_redis: Redis
) -> None:
    one, two = await replicas(dashboard, own_redis, 2)
    try:
        async with dashboard.client() as http, aiohttp.ClientSession() as thief:
            login = {"name": "alice", "password": PASSWORD}
            async with http.post(f"http://127.0.0.1:{one.port}/api/login", json=login) as r:
                assert r.status == 200
                token = (await r.json())["csrf_token"]
            copied = {"Cookie": f"dronetrack_session={r.cookies['dronetrack_session'].value}"}
            for server in (one, two):
                async with thief.get(
                    f"http://127.0.0.1:{server.port}/api/drones", headers=copied
                ) as r:
                    assert r.status == 200
            async with http.post(
                f"http://127.0.0.1:{one.port}/api/logout",
                headers={"X-CSRF-Token": token, **copied},
            ) as r:
                assert r.status == 200
            await own_redis.flushall()  # everything evicted, or Redis restarted empty

            async def refused_on_both() -> bool:
                statuses = set()
                for server in (one, two):
                    url = f"http://127.0.0.1:{server.port}/api/drones"
                    async with thief.get(url, headers=copied) as r:
                        statuses.add(r.status)
                return statuses == {401}

            await eventually(refused_on_both, timeout=10, what="the copy to be refused")
            for _ in range(3):  # and it stays refused: nothing in Redis brings it back
                assert await refused_on_both()
            async with http.post(f"http://127.0.0.1:{two.port}/api/login", json=login) as r:
                assert r.status == 200, "a new session is not touched by the old one's end"
                fresh = {"Cookie": f"dronetrack_session={r.cookies['dronetrack_session'].value}"}
            async with thief.get(f"http://127.0.0.1:{one.port}/api/drones", headers=fresh) as r:
                assert r.status == 200
    finally:
        for server in (one, two):
            await server.close()


async def test_a_throttled_name_stays_throttled_when_redis_forgets_everything(
    dashboard: Dashboard, own_redis: Redis
) -> None:
    (server,) = await replicas(
        dashboard, own_redis, 1, dashboard_login_failures_per_name=3, dashboard_login_window_s=600
    )
    url = f"http://127.0.0.1:{server.port}/api/login"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(3):
                async with http.post(url, json={"name": "bob", "password": "wrong"}) as r:
                    assert r.status == 401
            await own_redis.flushall()
            async with http.post(url, json={"name": "bob", "password": PASSWORD}) as r:
                assert r.status == 429, await r.text()
    finally:
        await server.close()


async def test_a_cookie_from_before_issue_times_works_until_its_user_signs_out(
    dashboard: Dashboard,
) -> None:
    alice = await dashboard.store.get_user("alice")
    assert alice is not None
    # A cookie as sessions were signed before they carried their issue time.
    payload = json.dumps(
        {
            "user": "alice",
            "expires": int(time.time()) + 3600,
            "csrf": "old-token",
            "credential": fingerprint(alice.password_hash),
        }
    ).encode()
    signature = hmac.new(dashboard.settings.dashboard_session_secret.encode(), payload, "sha256")
    cookie = b".".join(base64.urlsafe_b64encode(x) for x in (payload, signature.digest()))
    headers = {"Cookie": f"dronetrack_session={cookie.decode()}"}
    async with aiohttp.ClientSession(base_url=dashboard.url) as http:
        async with http.get("/api/drones", headers=headers) as r:
            assert r.status == 200, await r.text()
        async with http.post("/api/logout", headers={**headers, "X-CSRF-Token": "old-token"}) as r:
            assert r.status == 200
        async with http.get("/api/drones", headers=headers) as r:
            assert r.status == 401
