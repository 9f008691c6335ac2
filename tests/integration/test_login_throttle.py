"""Failed logins are counted per name and per client address, in the cache every replica
shares: past a limit the login is refused with 429 before any password is checked."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from dashboard.app import create_app
from dronetrack.broker import free_port
from tests.dashboard_env import PASSWORD, Dashboard

WINDOW_S = 600


@pytest.fixture
async def guarded(dashboard: Dashboard) -> AsyncIterator[str]:
    """A second dashboard on the same store with small limits, behind a trusted proxy."""
    settings = dashboard.settings.replace(
        dashboard_login_failures_per_name=3,
        dashboard_login_failures_per_address=5,
        dashboard_login_window_s=WINDOW_S,
        dashboard_trust_proxy=True,
    )
    server = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def login(url: str, name: str, password: str, client: str = "198.51.100.1") -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{url}/api/login",
            json={"name": name, "password": password},
            headers={"X-Forwarded-For": f"203.0.113.66, {client}"},
        ) as r,
    ):
        return r.status, r.headers.get("Retry-After"), await r.json()


async def test_a_name_is_refused_after_its_failures_even_with_the_right_password(
    guarded: str, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        assert (await login(guarded, "alice", "wrong"))[0] == 401
    (said,) = [r for r in caplog.records if r.getMessage() == "login throttled"]
    assert (said.by, said.user, said.address) == ("name", "alice", "198.51.100.1")  # type: ignore[attr-defined]
    status, retry_after, body = await login(guarded, "alice", PASSWORD, client="198.51.100.2")
    assert status == 429
    assert retry_after is not None
    assert 0 < int(retry_after) <= WINDOW_S
    assert body == {
        "type": "about:blank",
        "title": "Too many failed logins",
        "status": 429,
        "detail": f"try again in {retry_after} s, with the right password",
    }
    assert (await login(guarded, "bob", PASSWORD))[0] == 200, "other names are not affected"
    async with aiohttp.ClientSession() as http, http.get(f"{guarded}/metrics") as r:
        text = await r.text()
    assert 'dashboard_logins_total{outcome="throttled"} 1.0' in text
    assert 'dashboard_logins_total{outcome="refused"} 3.0' in text


async def test_a_successful_login_clears_its_names_failures(guarded: str) -> None:
    for _ in range(2):
        assert (await login(guarded, "alice", "wrong"))[0] == 401
    assert (await login(guarded, "alice", PASSWORD))[0] == 200
    for _ in range(2):
        assert (await login(guarded, "alice", "wrong", client="198.51.100.3"))[0] == 401
    assert (await login(guarded, "alice", PASSWORD, client="198.51.100.3"))[0] == 200


async def test_an_address_is_refused_after_its_failures_whatever_the_name(guarded: str) -> None:
    for name in ("u1", "u2", "u3", "u4", "u5"):
        assert (await login(guarded, name, "wrong", client="198.51.100.9"))[0] == 401
    assert (await login(guarded, "bob", PASSWORD, client="198.51.100.9"))[0] == 429
    # The proxy's last entry is the address: what the client put before it counts for nothing.
    assert (await login(guarded, "bob", PASSWORD, client="198.51.100.10"))[0] == 200


async def test_without_a_trusted_proxy_the_forwarded_address_is_ignored(
    dashboard: Dashboard,
) -> None:
    settings = dashboard.settings.replace(dashboard_login_failures_per_address=2)
    server = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}"
    try:
        assert (await login(url, "u1", "wrong", client="198.51.100.20"))[0] == 401
        assert (await login(url, "u2", "wrong", client="198.51.100.21"))[0] == 401
        assert (await login(url, "carol", PASSWORD, client="198.51.100.22"))[0] == 429
    finally:
        await server.close()


async def test_replicas_sharing_redis_share_the_count(dashboard: Dashboard) -> None:
    settings = dashboard.settings.replace(
        redis_url="redis://127.0.0.1:6379/0",
        dashboard_login_failures_per_address=2,
        dashboard_trust_proxy=True,
    )
    replicas = [
        TestServer(create_app(settings), host="127.0.0.1", port=free_port()) for _ in range(2)
    ]
    for server in replicas:
        await server.start_server()
    one, two = (f"http://127.0.0.1:{s.port}" for s in replicas)
    client = f"2001:db8::{uuid.uuid4().hex[:4]}"  # the Redis outlives this run: a fresh address
    try:
        assert (await login(one, f"u-{uuid.uuid4().hex}", "wrong", client))[0] == 401
        assert (await login(two, f"u-{uuid.uuid4().hex}", "wrong", client))[0] == 401
        assert (await login(one, "bob", PASSWORD, client))[0] == 429
        assert (await login(two, "bob", PASSWORD, client))[0] == 429
    finally:
        for server in replicas:
            await server.close()


async def test_a_limit_of_zero_counts_nothing(dashboard: Dashboard) -> None:
    settings = dashboard.settings.replace(
        dashboard_login_failures_per_name=2, dashboard_login_failures_per_address=0
    )
    server = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await server.start_server()
    url = f"http://127.0.0.1:{server.port}"
    try:
        for name in ("u1", "u2", "u3", "u4"):
            assert (await login(url, name, "wrong"))[0] == 401
        assert (await login(url, "bob", PASSWORD))[0] == 200, "no limit by address"
        assert (await login(url, "u1", "wrong"))[0] == 401
        assert (await login(url, "u1", "wrong"))[0] == 429, "the limit by name holds"
    finally:
        await server.close()
