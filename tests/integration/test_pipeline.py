"""End to end on the embedded default: POST to ingest, through Kafka and a Faust worker into
the store, read back through the dashboard API."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

from aiohttp.test_utils import TestClient

from dashboard.app import create_app as create_dashboard
from dronetrack.settings import Settings
from ingest.app import create_app as create_ingest
from tests.dashboard_env import sign_in
from tests.integration.conftest import eventually

AiohttpClient = Any  # pytest-aiohttp's factory fixture


def flight(drone_id: str, n: int, t0: int = 1_795_000_000_000) -> list[dict[str, Any]]:
    return [
        {
            "drone_id": drone_id,
            "ts": t0 + i * 1000,
            "lat": 47.0 + i / 1000,
            "lon": 8.0 + i / 500,
            "alt_m": 50.0 + i,
            "speed_mps": 10.0,
            "heading_deg": float(i % 360),
            "battery_pct": 100.0 - i / 2,
            "seq": i,
        }
        for i in range(n)
    ]


async def test_posted_records_reach_the_dashboard_exactly_once_and_in_order(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    worker: subprocess.Popen[bytes],
    auth: dict[str, str],
) -> None:
    ingest: TestClient[Any, Any] = await aiohttp_client(create_ingest(settings))
    dashboard: TestClient[Any, Any] = await aiohttp_client(create_dashboard(settings))
    await sign_in(dashboard, settings.default_fleet)
    run = uuid.uuid4().hex[:8]
    flights = {f"e2e-{run}-{k}": flight(f"e2e-{run}-{k}", 25) for k in range(3)}

    # Interleave drones, mixing single-record and array bodies as ground stations do.
    for i in range(0, 25, 5):
        for records in flights.values():
            single, batch = records[i], records[i + 1 : i + 5]
            for payload in (single, batch):
                response = await ingest.post(
                    "/v1/telemetry", data=json.dumps(payload), headers=auth
                )
                assert response.status == 202, await response.text()

    async def all_latest() -> dict[str, Any] | None:
        response = await dashboard.get("/api/drones")
        assert response.status == 200
        mine = {d["drone_id"]: d for d in (await response.json())["drones"] if run in d["drone_id"]}
        done = len(mine) == 3 and all(d["seq"] == 24 for d in mine.values())
        return mine if done else None

    latest = await eventually(all_latest, what="the latest state of all three drones")
    for drone_id, records in flights.items():
        assert {k: latest[drone_id][k] for k in records[-1]} == records[-1]
        assert latest[drone_id]["fleet"] == settings.default_fleet
        assert latest[drone_id]["received_at"] >= records[-1]["ts"] - 10**9

        response = await dashboard.get(f"/api/drones/{drone_id}/track")
        points = (await response.json())["points"]
        assert [p["seq"] for p in points] == list(range(24, -1, -1)), "newest first, no gaps"
        expected = {k: records[0][k] for k in points[-1]}
        assert points[-1] == expected


async def test_an_unknown_drone_is_a_404_problem(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    dashboard: TestClient[Any, Any] = await aiohttp_client(create_dashboard(settings))
    await sign_in(dashboard, settings.default_fleet)
    response = await dashboard.get("/api/drones/never-seen")
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    assert (await response.json())["title"] == "Unknown drone"


async def test_a_retried_batch_leaves_one_copy_downstream(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    worker: subprocess.Popen[bytes],
    auth: dict[str, str],
) -> None:
    """A client that never saw its 202 sends the batch again: the topic then holds it twice, and
    the store keeps one copy (track points keyed by (fleet, drone_id, ts); latest state never
    moves backwards), so what the dashboard shows is as if it had been sent once."""
    ingest: TestClient[Any, Any] = await aiohttp_client(create_ingest(settings))
    dashboard: TestClient[Any, Any] = await aiohttp_client(create_dashboard(settings))
    await sign_in(dashboard, settings.default_fleet)
    drone_id = f"retry-{uuid.uuid4().hex[:8]}"
    records = flight(drone_id, 11)
    batch, marker = json.dumps(records[:10]), json.dumps(records[10])
    for body in (batch, batch, json.dumps(records[3]), batch, marker):
        response = await ingest.post("/v1/telemetry", data=body, headers=auth)
        assert response.status == 202, await response.text()

    async def marker_stored() -> bool:
        response = await dashboard.get(f"/api/drones/{drone_id}")
        return response.status == 200 and (await response.json())["seq"] == 10

    await eventually(marker_stored, what="the record sent after the retries")
    response = await dashboard.get(f"/api/drones/{drone_id}/track")
    points = (await response.json())["points"]
    assert [p["seq"] for p in points] == list(range(10, -1, -1)), "one copy of each record"
