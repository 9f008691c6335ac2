"""Flights end to end: a drone's records on the embedded broker, through the session worker, to a
finished flight in the store and on drone.flights.v1."""

from __future__ import annotations

import subprocess
import uuid

from dronetrack import events, topics
from dronetrack.settings import Settings
from dronetrack.store import Flight, Store
from tests.integration.conftest import eventually
from tests.integration.streaming import flight, flight_summary, produce, read_topic
from tests.integration.test_streams import fresh_t0, store

__all__ = ["store"]  # the fixture


async def test_a_flown_flight_is_stored_with_its_summary_and_published(
    settings: Settings, worker: subprocess.Popen[bytes], store: Store
) -> None:
    fleet = f"it-fl-{uuid.uuid4().hex[:8]}"
    drone = f"{fleet}-a"
    t0 = fresh_t0()
    # Airborne for 160 s at 11 m/s, 0.0001 degrees of latitude a second, draining from 40 %;
    # on the ground from 160 s (battery 0 %, charging). Its summary, literal: flight_summary.
    await produce(settings, flight(fleet, drone, 200, t0))
    expected = flight_summary(fleet, drone, t0)

    async def stored() -> list[Flight] | None:
        return await store.flights(fleet, drone) or None

    assert await eventually(stored, what="the flight in the store") == [expected]
    assert await store.flight(fleet, expected.flight_id) == expected

    published = await read_topic(settings, topics.FLIGHTS, lambda m: fleet.encode() in m.value)
    assert [events.decode_flight(m.value) for m in published] == [expected]
    assert [m.key for m in published] == [f"{fleet}/{drone}".encode()]
