"""Fewer bytes for the same data: replay as delta-coded columns, JSON gzip-compressed for a
client that accepts it."""

from __future__ import annotations

import gzip
import json

import aiohttp

from tests.dashboard_env import Dashboard, telemetry


async def test_replay_columns_are_delta_coded_integers(dashboard: Dashboard) -> None:
    t = dashboard.t0 + 5_000
    await dashboard.store.write_telemetry(
        [
            telemetry(
                "alpha",
                "c-1",
                t,
                lat=47.1,
                lon=8.2,
                alt_m=100.0,
                speed_mps=10.0,
                heading_deg=45.0,
                battery=80.0,
                seq=1,
            ),
            telemetry(
                "alpha",
                "c-1",
                t + 1_000,
                lat=47.1001,
                lon=8.2,
                alt_m=100.5,
                speed_mps=10.0,
                heading_deg=46.0,
                battery=79.9,
                seq=2,
            ),
            telemetry(
                "alpha",
                "c-1",
                t + 2_000,
                lat=47.1003,
                lon=8.2,
                alt_m=101.0,
                speed_mps=12.3,
                heading_deg=44.0,
                battery=79.8,
                seq=3,
            ),
        ]
    )
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        async with http.get(f"/api/replay/columns?since={t}&until={t + 3_000}") as r:
            assert r.status == 200
            body = await r.json()
    assert body["scales"] == {
        "lat": 1_000_000,
        "lon": 1_000_000,
        "alt_m": 10,
        "speed_mps": 10,
        "heading_deg": 1,
        "battery_pct": 10,
    }
    (flight,) = [f for f in body["drones"] if f["drone_id"] == "c-1"]
    assert flight == {
        "drone_id": "c-1",
        "truncated": False,
        "ts": [t, 1_000, 1_000],
        "lat": [47_100_000, 100, 200],
        "lon": [8_200_000, 0, 0],
        "alt_m": [1_000, 5, 5],
        "speed_mps": [100, 0, 23],
        "heading_deg": [45, 1, -2],
        "battery_pct": [800, -1, -1],
    }


async def test_replay_columns_check_their_window(dashboard: Dashboard) -> None:
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        for query in ("since=5&until=5", "since=0", "since=x&until=5"):
            async with http.get(f"/api/replay/columns?{query}") as r:
                assert r.status == 400, query
                assert r.content_type == "application/problem+json"


async def test_columns_are_a_fraction_of_the_point_objects(dashboard: Dashboard) -> None:
    t0 = dashboard.t0
    window = f"since={t0 - 200_000}&until={t0 + 1}"
    async with dashboard.client() as http:
        await dashboard.login(http, "alice")
        async with http.get(f"/api/replay?{window}", headers={"Accept-Encoding": "identity"}) as r:
            objects = len(await r.read())
        async with http.get(
            f"/api/replay/columns?{window}", headers={"Accept-Encoding": "identity"}
        ) as r:
            compact = len(await r.read())
    # a-1's 120 points and one point for each other drone, plus the same alerts in both.
    assert compact < objects * 0.4, (compact, objects)


async def test_json_is_gzipped_when_the_client_accepts_it(dashboard: Dashboard) -> None:
    t0 = dashboard.t0
    path = f"/api/replay?since={t0 - 200_000}&until={t0 + 1}"
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(
        base_url=dashboard.url, cookie_jar=jar, auto_decompress=False
    ) as http:
        await dashboard.login(http, "alice")
        async with http.get(path, headers={"Accept-Encoding": "gzip, deflate"}) as r:
            assert r.headers["Content-Encoding"] == "gzip"
            assert r.headers["Vary"] == "Accept-Encoding"
            packed = await r.read()
        async with http.get(path, headers={"Accept-Encoding": "identity"}) as r:
            assert "Content-Encoding" not in r.headers
            plain = await r.read()
        assert json.loads(gzip.decompress(packed)) == json.loads(plain)
        assert len(packed) < len(plain) / 4, (len(packed), len(plain))
        # A small body is not worth compressing.
        async with http.get("/api/session", headers={"Accept-Encoding": "gzip"}) as r:
            assert "Content-Encoding" not in r.headers
