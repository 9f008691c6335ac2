"""Hostile input to the dashboard is a 4xx problem naming what is wrong, never a 500: odd
query values, malformed cookies and CSRF headers, unknown paths and methods."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.dashboard_env import Dashboard

API_GETS = [
    "/api/session",
    "/api/drones",
    "/api/drones/a-1",
    "/api/drones/a-1/track",
    "/api/drones/a-1/alerts",
    "/api/alerts",
    "/api/stats",
    "/api/replay?since=0&until=1000",
    "/api/events",
]


async def problem_of(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body: dict[str, Any] = await response.json()
    assert body["status"] == status
    return body


@pytest.mark.parametrize("path", API_GETS)
async def test_a_cookie_that_is_not_base64_ascii_is_not_signed_in(
    dashboard: Dashboard, path: str
) -> None:
    async with (
        aiohttp.ClientSession(base_url=dashboard.url) as http,
        http.get(path, headers={"Cookie": "dronetrack_session=e30=.\u00e9"}) as r,
    ):
        await problem_of(r, 401)


async def test_a_csrf_header_that_is_not_ascii_is_refused(dashboard: Dashboard) -> None:
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        async with http.post("/api/logout", headers={"X-CSRF-Token": "\u00e9"}) as r:
            await problem_of(r, 403)


# (query, the parameter the answer must name)
BAD_QUERIES = [
    ("/api/drones/a-1/track?since=\u00b2", "since"),
    ("/api/drones/a-1/track?before=\u00b2", "before"),
    ("/api/drones/a-1/track?limit=\u00b2", "limit"),
    ("/api/drones/a-1/alerts?limit=\u00b2", "limit"),
    ("/api/alerts?limit=\u00b2", "limit"),
    ("/api/alerts?until=\u0661\u0662", "until"),  # Arabic-Indic digits
    ("/api/drones/a-1/track?since=" + "9" * 5000, "since"),
    ("/api/drones/a-1/track?limit=" + "9" * 5000, "limit"),
    ("/api/drones/a-1/track?before=" + "9" * 20, "before"),  # over 2**63
    ("/api/drones/a-1/track?since=-" + "9" * 20, "since"),
    ("/api/drones/a-1/track?since=-62135596800001", "since"),  # before year 1
    ("/api/drones/a-1/track?before=253402300800000", "before"),  # after 9999
    ("/api/alerts?since=" + str(2**63), "since"),
    ("/api/stats?until=" + str(2**64), "until"),
    ("/api/replay?since=" + str(2**63) + "&until=" + str(2**63 + 1000), "since"),
    ("/api/alerts?since=2026-13-01T00:00:00Z", "since"),
    ("/api/alerts?since=2026-12-01T00:00:00", "since"),  # no zone
    ("/api/alerts?since=2026-12-01T00:00:61Z", "since"),
    ("/api/alerts?since=1e3", "since"),
    ("/api/drones/a-1/track?limit=0", "limit"),
    ("/api/drones/a-1/track?limit=10001", "limit"),
    ("/api/drones/a-1/track?limit=%2B5", "limit"),
]


@pytest.mark.parametrize(("path", "parameter"), BAD_QUERIES)
async def test_odd_query_values_are_a_400_naming_the_parameter(
    dashboard: Dashboard, path: str, parameter: str
) -> None:
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        async with http.get(path) as r:
            body = await problem_of(r, 400)
    assert body["title"] == "Bad query"
    assert body["detail"].startswith(parameter + " "), body


async def test_the_largest_and_smallest_times_are_answered(dashboard: Dashboard) -> None:
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        for path in (
            "/api/drones/a-1/track?since=0&before=253402300799999",
            "/api/alerts?since=0&until=253402300799999",
            "/api/alerts?since=9999-12-31T23:59:59.998Z&until=9999-12-31T23:59:59.999Z",
            "/api/alerts?since=0001-01-01T00:00:00%2B14:00&until=1970-01-01t00:00:00z",
            "/api/alerts?since=-62135596800000&until=2016-12-31T23:59:60.5Z",
            "/api/stats?since=0&until=1000",
        ):
            async with http.get(path) as r:
                assert r.status == 200, (path, await r.text())


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/nothing-here", 404),
        ("GET", "/static/nothing-here.js", 404),
        ("GET", "/nothing-here", 404),
        ("DELETE", "/api/login", 405),
        ("GET", "/api/login", 405),
        ("PUT", "/healthz", 405),
    ],
)
async def test_unknown_paths_and_methods_are_problems(
    dashboard: Dashboard, method: str, path: str, status: int
) -> None:
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        async with http.request(method, path) as r:
            body = await problem_of(r, status)
            if status == 405:
                assert r.headers["Allow"], "405 says what is allowed"
    assert body["title"] in {"Not Found", "Method Not Allowed"}


@pytest.mark.parametrize(
    "path",
    ["/", "/api/openapi.json", "/healthz", "/readyz", "/metrics", "/static/app.js", "/api/drones"],
)
async def test_every_response_says_nosniff(dashboard: Dashboard, path: str) -> None:
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        async with http.get(path) as r:
            assert r.status == 200, path
            assert r.headers["X-Content-Type-Options"] == "nosniff"
