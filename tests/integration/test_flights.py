"""Flights end to end: a drone's records on the embedded broker, through the session worker, to a
finished flight in the store and on drone.flights.v1."""

from __future__ import annotations

import subprocess
import uuid

from dronetrack import events, topics
from dronetrack.settings import Settings
from dronetrack.store import Flight, Store
from tests.integration.conftest import eventually
from tests.integration.streaming import flight, produce, read_topic
from tests.integration.test_streams import fresh_t0, store

__all__ = ["store"]  # the fixture


async def test_a_flown_flight_is_stored_with_its_summary_and_published(
    settings: Settings, worker: subprocess.Popen[bytes], store: Store
) -> None:
    fleet = f"it-fl-{uuid.uuid4().hex[:8]}"
    drone = f"{fleet}-a"
    t0 = fresh_t0()
    # Airborne for 160 s at 11 m/s, 0.0001 degrees of latitude a second, draining from 40 %;
    # on the ground from 160 s (battery 0 %, charging).
    await produce(settings, flight(fleet, drone, 200, t0))
    expected = Flight(
        fleet=fleet,
        drone_id=drone,
        flight_id=f"{fleet}/{drone}/{t0}",
        start=t0,
        end=t0 + 160_000,
        duration_ms=160_000,
        ended_by="landed",
        distance_m=1779.1,  # 0.016 degrees of latitude
        max_alt_m=100.0,
        max_speed_mps=11.0,
        battery_start_pct=40.0,
        battery_end_pct=0.0,
        battery_used_pct_per_min=15.0,
        points=161,
        alert_ids=[
            f"{drone}:rapid_drain:{t0 + 30_000}",
            f"{drone}:battery_low:{t0 + 80_000}",
            f"{drone}:battery_critical:{t0 + 120_000}",
        ],
    )

    async def stored() -> list[Flight] | None:
        return await store.flights(fleet, drone) or None

    assert await eventually(stored, what="the flight in the store") == [expected]
    assert await store.flight(fleet, expected.flight_id) == expected

    published = await read_topic(settings, topics.FLIGHTS, lambda m: fleet.encode() in m.value)
    assert [events.decode_flight(m.value) for m in published] == [expected]
    assert [m.key for m in published] == [f"{fleet}/{drone}".encode()]
