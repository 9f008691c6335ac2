"""A real dashboard for tests: the app from its factory on a free port, over a real SQLite
store seeded with two fleets, their users, drones, tracks, alerts and statistics. Tests write
to the same store file the way the stream worker would."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from dashboard.app import create_app
from dronetrack.broker import free_port
from dronetrack.passwords import hash_password
from dronetrack.record import Telemetry
from dronetrack.settings import Settings
from dronetrack.store import Alert, FleetStats, User, alert_id
from dronetrack.store.sqlite import SqliteStore

PASSWORD = "correct horse battery staple"
USERS = {"alice": ["alpha"], "bob": ["bravo"], "carol": ["alpha", "bravo"]}
DRONES = {"alpha": ["a-1", "a-2", "a-3"], "bravo": ["b-1"]}
TRACK_POINTS = 120  # a-1's history, one point a second
HOME = {
    "a-1": (47.37, 8.50),
    "a-2": (47.40, 8.56),
    "a-3": (47.35, 8.58),
    "a-8": (47.36, 8.54),
    "a-9": (47.385, 8.525),
    "b-1": (46.95, 7.45),
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def telemetry(
    fleet: str, drone_id: str, ts: int, *, battery: float = 80.0, north: float = 0.0, **over: Any
) -> Telemetry:
    lat, lon = HOME.get(drone_id, (47.0, 8.0))
    fields: dict[str, Any] = {
        "fleet": fleet,
        "drone_id": drone_id,
        "ts": ts,
        "lat": lat + north,
        "lon": lon,
        "alt_m": 100.0,
        "speed_mps": 10.0,
        "heading_deg": 45.0,
        "battery_pct": battery,
        "status": "airborne",
        "received_at": ts + 3,
    }
    return Telemetry(**{**fields, **over})


def alert(fleet: str, drone_id: str, raised_at: int, type_: Any = "battery_low") -> Alert:
    severity: Any = "critical" if type_ == "battery_critical" else "warning"
    return Alert(
        fleet=fleet,
        drone_id=drone_id,
        alert_id=alert_id(drone_id, type_, raised_at),
        type=type_,
        severity=severity,
        raised_at=raised_at,
        detail=f"{type_.replace('_', ' ')} on {drone_id}",
    )


@dataclass
class Dashboard:
    url: str
    store: SqliteStore  # a second connection to the dashboard's store, as the worker has
    settings: Settings
    t0: int  # when the seeded history ends
    server: TestServer

    async def restart(self) -> None:
        """Stop the dashboard and start a new one on the same port (a deploy, a crash)."""
        port = self.server.port
        await self.server.close()
        self.server = TestServer(create_app(self.settings), host="127.0.0.1", port=port)
        await self.server.start_server()

    def client(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(base_url=self.url, cookie_jar=aiohttp.CookieJar(unsafe=True))

    async def login(self, http: aiohttp.ClientSession, name: str) -> str:
        """Sign in; returns the CSRF token."""
        async with http.post("/api/login", json={"name": name, "password": PASSWORD}) as r:
            assert r.status == 200, await r.text()
            token: str = (await r.json())["csrf_token"]
            return token


async def seed(store: SqliteStore, t0: int) -> None:
    hashed = hash_password(PASSWORD)
    for name, fleets in USERS.items():
        await store.put_user(User(name=name, password_hash=hashed, fleets=fleets))
    await store.put_user(User(name="dave", password_hash=hashed, fleets=["alpha"], disabled=True))
    history = [
        telemetry(
            "alpha",
            "a-1",
            t0 - (TRACK_POINTS - 1 - i) * 1000,
            battery=90 - i / 10,
            north=(i - TRACK_POINTS + 1) * 1e-4,  # flying north, into the latest position
            seq=i,
        )
        for i in range(TRACK_POINTS)
    ]
    others = [telemetry(fleet, d, t0) for fleet, ds in DRONES.items() for d in ds if d != "a-1"]
    await store.write_telemetry(history + others)
    await store.write_alerts(
        [
            alert("alpha", "a-1", t0 - 60_000),
            alert("alpha", "a-2", t0 - 30_000, "battery_critical"),
            alert("bravo", "b-1", t0 - 20_000, "battery_critical"),
        ]
    )
    minute = t0 - t0 % 60_000
    await store.write_fleet_stats(
        [
            FleetStats(
                fleet="alpha",
                minute=minute - k * 60_000,
                drones_active=3,
                drones_in_flight=3,
                battery_mean=80.0 - k,
                battery_min=60.0,
                alerts_raised=1,
            )
            for k in range(3)
        ]
    )


def dashboard_settings(tmp_path: Path, **over: Any) -> Settings:
    base = Settings.from_env({}).replace(
        sqlite_path=tmp_path / "store.sqlite3",
        dashboard_tile_url="",
        dashboard_refresh_ms=200,
        dashboard_session_secret="test-secret",
    )
    return base.replace(**over)


@pytest.fixture
async def dashboard(tmp_path: Path) -> AsyncIterator[Dashboard]:
    settings = dashboard_settings(tmp_path)
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    t0 = now_ms()
    await seed(store, t0)
    server = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await server.start_server()
    running = Dashboard(f"http://127.0.0.1:{server.port}", store, settings, t0, server)
    try:
        yield running
    finally:
        await running.server.close()
        await store.close()


async def sign_in(client: Any, fleet: str, name: str = "tester") -> None:
    """Create a user of ``fleet`` in the app's store and sign ``client`` (a TestClient) in."""
    from dashboard.keys import STORE

    store = client.server.app[STORE]
    await store.put_user(User(name=name, password_hash=hash_password(PASSWORD), fleets=[fleet]))
    response = await client.post("/api/login", json={"name": name, "password": PASSWORD})
    assert response.status == 200, await response.text()
