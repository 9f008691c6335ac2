"""The dashboard API over a real SQLite store: login, CSRF, fleet scoping of every endpoint,
paging and time ranges."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from dashboard.openapi import document
from dronetrack.passwords import hash_password
from dronetrack.store import User
from tests.dashboard_env import TRACK_POINTS, Dashboard, now_ms, telemetry
from tests.integration.conftest import eventually

# Every API path with a drone/alert of fleet "bravo": alice (fleet alpha) must get 404 for each.
FOREIGN = [
    ("GET", "/api/drones?fleet=bravo"),
    ("GET", "/api/drones/b-1"),
    ("GET", "/api/drones/b-1/track"),
    ("GET", "/api/drones/b-1/alerts"),
    ("GET", "/api/alerts?fleet=bravo"),
    ("POST", "/api/alerts/{bravo_alert}/ack"),
    ("POST", "/api/alerts/{bravo_alert}/ack?fleet=bravo"),
    ("GET", "/api/stats?fleet=bravo"),
    ("GET", "/api/replay?fleet=bravo&since=0&until=1000"),
    ("GET", "/api/replay/columns?fleet=bravo&since=0&until=1000"),
    ("GET", "/api/events?fleet=bravo"),
    ("GET", "/api/drones/b-1/track.gpx?since=0"),
]
# Paths that need no fleet scoping: they say nothing about any fleet's data.
UNSCOPED = {"/api/login", "/api/logout", "/api/session"}


def template(path: str) -> str:
    route = path.split("?", maxsplit=1)[0]
    for name, value in (("drone_id", "b-1"), ("alert_id", "{bravo_alert}"), ("format", "gpx")):
        route = route.replace(value, "{" + name + "}")
    return route


def test_every_documented_data_path_has_a_scoping_case() -> None:
    documented = set(document()["paths"]) - UNSCOPED
    assert documented == {template(path) for _, path in FOREIGN}


def test_every_api_route_is_documented() -> None:
    from dashboard.app import create_app
    from dronetrack.settings import Settings

    app = create_app(Settings.from_env({}))
    routes = {
        r.resource.canonical
        for r in app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/")
    }
    assert routes - {"/api/openapi.json"} == set(document()["paths"])


async def test_login_sets_a_safe_cookie_and_logout_ends_the_session(dashboard: Dashboard) -> None:
    async with dashboard.client() as http:
        async with http.get("/api/session") as r:
            assert r.status == 401
        async with http.post("/api/login", json={"name": "alice", "password": "wrong"}) as r:
            assert r.status == 401
            assert r.content_type == "application/problem+json"
        async with http.post("/api/login", json={"name": "nobody", "password": "x"}) as r:
            assert r.status == 401
        async with http.post("/api/login", data="name=alice&password=x") as r:
            assert r.status == 415, "a cross-site form cannot post JSON without a preflight"
        token = await dashboard.login(http, "alice")
        async with http.post("/api/login", json={"name": "alice", "password": "x"}) as r:
            pass
        cookie = next(iter(http.cookie_jar))
        assert cookie["httponly"]
        assert cookie["samesite"] == "Lax"
        assert not cookie["secure"], "plain HTTP here: Secure only behind TLS"
        async with http.get("/api/session") as r:
            assert r.status == 200
            body = await r.json()
            assert body["user"] == "alice"
            assert body["fleets"] == ["alpha"]
            assert body["csrf_token"] == token
        async with http.post("/api/logout") as r:
            assert r.status == 403, "logout changes state: it needs the CSRF token"
        async with http.post("/api/logout", headers={"X-CSRF-Token": token}) as r:
            assert r.status == 200
        async with http.get("/api/drones") as r:
            assert r.status == 401


async def test_signing_out_ends_every_copy_of_the_session(dashboard: Dashboard) -> None:
    async with dashboard.client() as http, aiohttp.ClientSession(base_url=dashboard.url) as thief:
        token = await dashboard.login(http, "alice")
        copied = {"Cookie": f"dronetrack_session={next(iter(http.cookie_jar)).value}"}
        async with thief.get("/api/drones", headers=copied) as r:
            assert r.status == 200, "the copy works while the session does"
        async with http.post("/api/logout", headers={"X-CSRF-Token": token}) as r:
            assert r.status == 200
        async with thief.get("/api/drones", headers=copied) as r:
            assert r.status == 401
        await dashboard.login(http, "alice")
        async with http.get("/api/drones") as r:
            assert r.status == 200, "a new session is not touched by the old one's end"


async def test_a_new_password_ends_the_sessions_made_with_the_old_one(
    dashboard: Dashboard,
) -> None:
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        await dashboard.store.put_user(
            User(name="alice", password_hash=hash_password("a new passphrase"), fleets=["alpha"])
        )

        async def signed_out() -> bool:
            async with http.get("/api/drones") as r:
                return r.status == 401

        await eventually(signed_out, what="the old password's session to end")
        async with http.post(
            "/api/login", json={"name": "alice", "password": "a new passphrase"}
        ) as r:
            assert r.status == 200
        async with http.get("/api/drones") as r:
            assert r.status == 200


async def test_cookie_is_secure_behind_a_tls_proxy(dashboard: Dashboard) -> None:
    from aiohttp.test_utils import TestServer

    from dashboard.app import create_app
    from dronetrack.broker import free_port

    app = create_app(dashboard.settings.replace(dashboard_trust_proxy=True))
    server = TestServer(app, host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        async with (
            dashboard.client() as http,
            http.post(
                f"http://127.0.0.1:{server.port}/api/login",
                json={"name": "alice", "password": "correct horse battery staple"},
                headers={"X-Forwarded-Proto": "https"},
            ) as r,
        ):
            assert r.status == 200
            assert "Secure" in r.headers["Set-Cookie"]
            assert "HttpOnly" in r.headers["Set-Cookie"]
    finally:
        await server.close()


async def test_disabled_users_and_forged_cookies_get_nothing(dashboard: Dashboard) -> None:
    async with dashboard.client() as http:
        async with http.post(
            "/api/login", json={"name": "dave", "password": "correct horse battery staple"}
        ) as r:
            assert r.status == 401
        http.cookie_jar.update_cookies({"dronetrack_session": "eyJ1c2VyIjoiYWxpY2UifQ.Zm9v"})
        async with http.get("/api/drones") as r:
            assert r.status == 401


@pytest.mark.parametrize(
    "path",
    [p for m, p in FOREIGN if m == "GET"] + ["/api/session", "/api/drones", "/api/alerts"],
)
async def test_every_endpoint_needs_a_session(dashboard: Dashboard, path: str) -> None:
    async with dashboard.client() as http, http.get(path) as r:
        assert r.status == 401


async def test_another_fleets_data_is_a_404_everywhere(dashboard: Dashboard) -> None:
    bravo_alert = (await dashboard.store.alerts("bravo", since_ms=0, until_ms=2**62))[0].alert_id
    async with dashboard.client() as http:
        token = await dashboard.login(http, "alice")
        for method, path in FOREIGN:
            url = path.replace("{bravo_alert}", bravo_alert)
            async with http.request(method, url, headers={"X-CSRF-Token": token}) as r:
                assert r.status == 404, f"{method} {url} answered {r.status}"
                assert r.content_type == "application/problem+json"
        async with http.get("/api/drones") as r:
            assert [d["drone_id"] for d in (await r.json())["drones"]] == ["a-1", "a-2", "a-3"]
        async with http.get("/api/alerts") as r:
            assert {a["drone_id"] for a in (await r.json())["alerts"]} == {"a-1", "a-2"}
    assert (await dashboard.store.alerts("bravo", since_ms=0, until_ms=2**62))[0].state == "active"
    async with dashboard.client() as http:
        await dashboard.login(http, "carol")  # both fleets
        async with http.get("/api/drones/b-1?fleet=bravo") as r:
            assert r.status == 200
            assert (await r.json())["fleet"] == "bravo"
        async with http.get("/api/drones/b-1") as r:
            assert r.status == 404, "the default fleet is carol's first, alpha"


async def test_acknowledging_needs_the_csrf_token_and_same_origin(dashboard: Dashboard) -> None:
    alert = (await dashboard.store.alerts("alpha", since_ms=0, until_ms=2**62))[0]
    url = f"/api/alerts/{alert.alert_id}/ack"
    async with dashboard.client() as http:
        token = await dashboard.login(http, "alice")
        async with http.post(url) as r:
            assert r.status == 403
        async with http.post(url, headers={"X-CSRF-Token": "not-the-token"}) as r:
            assert r.status == 403
        evil = {"X-CSRF-Token": token, "Origin": "https://evil.example"}
        async with http.post(url, headers=evil) as r:
            assert r.status == 403
        async with http.post(
            "/api/login",
            json={"name": "alice", "password": "x"},
            headers={"Origin": evil["Origin"]},
        ) as r:
            assert r.status == 403, "login CSRF: another site may not sign us in"
        assert (await dashboard.store.alerts("alpha", since_ms=0, until_ms=2**62))[0].state == (
            "active"
        )
        async with http.post(url, headers={"X-CSRF-Token": token, "Origin": dashboard.url}) as r:
            assert r.status == 200
            body = await r.json()
            assert body["acknowledged_by"] == "alice"
        async with http.get("/api/alerts?state=acknowledged") as r:
            assert [a["alert_id"] for a in (await r.json())["alerts"]] == [alert.alert_id]
        async with http.post("/api/alerts/nope/ack", headers={"X-CSRF-Token": token}) as r:
            assert r.status == 404


async def test_track_pages_newest_first_without_gaps(dashboard: Dashboard) -> None:
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        seen: list[int] = []
        cursor = ""
        for _ in range(10):
            async with http.get(f"/api/drones/a-1/track?limit=50{cursor}") as r:
                assert r.status == 200
                page = await r.json()
            seen += [p["ts"] for p in page["points"]]
            if page["next_before"] is None:
                break
            cursor = f"&before={page['next_before']}"
        assert len(seen) == TRACK_POINTS
        assert seen == sorted(set(seen), reverse=True)
        for bad in (
            "limit=0",
            "limit=abc",
            "limit=10001",
            "before=yesterday",
            "since=2026-01-01T00:00",
        ):
            async with http.get(f"/api/drones/a-1/track?{bad}") as r:
                assert r.status == 400, bad
                assert "detail" in await r.json()


async def test_time_ranges_accept_epoch_ms_and_rfc3339(dashboard: Dashboard) -> None:
    t0 = dashboard.t0
    since, before = t0 - 10_000, t0 - 5_000
    iso = datetime.fromtimestamp(since / 1000, UTC).isoformat().replace("+00:00", "Z")
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        for query in (f"since={since}&before={before}", f"since={iso}&before={before}"):
            async with http.get(f"/api/drones/a-1/track?{query}") as r:
                points = (await r.json())["points"]
            assert [p["ts"] for p in points] == [t0 - k * 1000 for k in range(6, 11)]
        async with http.get(f"/api/alerts?since={t0 - 45_000}&until={t0}") as r:
            assert [a["drone_id"] for a in (await r.json())["alerts"]] == ["a-2"]
        async with http.get(f"/api/alerts?since={t0}&until={t0 - 1}") as r:
            assert r.status == 400
        async with http.get("/api/alerts?limit=1") as r:
            page = await r.json()
            assert [a["drone_id"] for a in page["alerts"]] == ["a-2"]
        async with http.get(f"/api/alerts?limit=1&until={page['next_until'] - 1}") as r:
            assert [a["drone_id"] for a in (await r.json())["alerts"]] == ["a-1"]
        async with http.get(f"/api/replay?since={t0 - 3_000}&until={t0 + 1}") as r:
            replay = await r.json()
        flights = {f["drone_id"]: [p["ts"] for p in f["points"]] for f in replay["drones"]}
        assert flights["a-1"] == [t0 - 3000, t0 - 2000, t0 - 1000, t0], "oldest first"
        assert set(flights) == {"a-1", "a-2", "a-3"}
        async with http.get(f"/api/replay?since=0&until={t0}") as r:
            assert r.status == 400, "windows are bounded"


async def test_stats_count_the_fleet_now_and_per_minute(dashboard: Dashboard) -> None:
    silent = telemetry("alpha", "a-9", dashboard.t0 - 60_000, battery=10)
    await dashboard.store.write_telemetry([silent])
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        async with http.get("/api/stats") as r:
            stats = await r.json()
    assert stats["current"]["drones"] == 4
    assert stats["current"]["stale"] == 1
    assert stats["current"]["alerts_active"] == 2
    assert stats["current"]["battery_min"] == 10
    assert len(stats["minutes"]) == 3


async def next_event(stream: aiohttp.StreamReader) -> tuple[str, dict[str, Any]]:
    name = ""
    async for line in stream:
        if line.startswith(b"event: "):
            name = line[7:].strip().decode()
        elif line.startswith(b"data: "):
            return name, json.loads(line[6:])
    raise AssertionError("the event stream ended")


async def test_live_events_stream_the_fleet_then_only_changes(dashboard: Dashboard) -> None:
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        async with http.get("/api/events") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "text/event-stream"
            assert await r.content.readline() == b"retry: 2000\n", "how soon to reconnect"
            first = dict([await next_event(r.content), await next_event(r.content)])
            assert {d["drone_id"] for d in first["drones"]["drones"]} == {"a-1", "a-2", "a-3"}
            assert {a["drone_id"] for a in first["alerts"]["alerts"]} == {"a-1", "a-2"}

            await dashboard.store.write_telemetry([telemetry("alpha", "a-2", now_ms())])
            name, delta = await next_event(r.content)
    assert name == "drones-delta"
    assert [d["drone_id"] for d in delta["drones"]] == ["a-2"], "only the drone that reported"


async def test_an_open_stream_ends_when_its_session_may_no_longer_see_the_fleet(
    dashboard: Dashboard,
) -> None:
    async def ended(stream: aiohttp.StreamReader) -> bool:
        async for _ in stream:
            pass
        return True

    async with dashboard.client() as alice, dashboard.client() as carol:
        token = await dashboard.login(alice, "alice")
        await dashboard.login(carol, "carol")
        async with (
            alice.get("/api/events") as signed_out,
            carol.get("/api/events?fleet=bravo") as disabled,
        ):
            await next_event(signed_out.content)
            await next_event(disabled.content)
            async with alice.post("/api/logout", headers={"X-CSRF-Token": token}) as r:
                assert r.status == 200
            assert await asyncio.wait_for(ended(signed_out.content), 30)
            assert await dashboard.store.disable_user("carol")
            assert await asyncio.wait_for(ended(disabled.content), 30)


async def test_openapi_document_is_public(dashboard: Dashboard) -> None:
    async with dashboard.client() as http, http.get("/api/openapi.json") as r:
        assert r.status == 200
        doc = await r.json()
    assert doc["openapi"].startswith("3.")
    assert "Telemetry" in doc["components"]["schemas"]


def test_the_document_says_what_the_server_does() -> None:
    paths = document()["paths"]
    replay = {p["name"]: p for p in paths["/api/replay"]["get"]["parameters"]}
    assert (replay["since"]["required"], replay["until"]["required"]) == (True, True)
    assert replay["since"]["schema"] == {
        "anyOf": [
            {"type": "integer", "minimum": -62_135_596_800_000, "maximum": 253_402_300_799_999},
            {"type": "string", "format": "date-time"},
        ]
    }
    login = paths["/api/login"]["post"]
    assert set(login["responses"]) == {"200", "400", "401", "403", "415", "429"}
    assert login["requestBody"]["content"]["application/json"]["schema"] == {
        "type": "object",
        "properties": {"name": {"type": "string"}, "password": {"type": "string"}},
        "required": ["name", "password"],
        "additionalProperties": False,
    }
    logout = paths["/api/logout"]["post"]
    assert set(logout["responses"]) == {"200", "401", "403"}
    assert [p["name"] for p in logout["parameters"]] == ["X-CSRF-Token"]
