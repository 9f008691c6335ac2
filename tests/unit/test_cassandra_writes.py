"""How many requests the Cassandra adapter sends for a batch of telemetry (each costs the
worker tens of µs of driver Python), counted on the in-process stand-in."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from cassandra.query import UNSET_VALUE
from cassandra.util import Date

from dronetrack.settings import Settings
from dronetrack.store import StoreUnavailable, cassandra_schema
from dronetrack.store.cassandra import CassandraStore
from tests.cassandra_standin import StandinCluster, install
from tests.contract.test_store import rec

SETTINGS = Settings(store="cassandra", cassandra_contact_points="standin")


@pytest.fixture
async def store(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[CassandraStore, StandinCluster]]:
    cluster = install(monkeypatch)
    cassandra_schema.migrate(SETTINGS)
    adapter = CassandraStore(SETTINGS)
    await adapter.open()
    yield adapter, cluster
    await adapter.close()
    cluster.io.shutdown(wait=True)


async def test_a_drained_batch_costs_one_request_per_drone_plus_a_few(
    store: tuple[CassandraStore, StandinCluster],
) -> None:
    adapter, cluster = store
    drones = [f"d{n:03d}" for n in range(250)]
    first = [rec(d, i=i) for i in range(4) for d in drones]
    second = [rec(d, i=i) for i in range(4, 8) for d in drones]

    cluster.requests = 0
    await adapter.write_telemetry(first)
    # 250 track batches (one partition each), 4 latest-state batches (250 rows of one fleet
    # partition, 64 a batch), 250 day marks (the first time this process sees each day).
    assert cluster.requests == 504

    cluster.requests = 0
    await adapter.write_telemetry(second)
    assert cluster.requests == 254, "day marks are written once per day per process"
    latest = await adapter.drone("f1", "d042")
    assert latest is not None
    assert latest.seq == 7
    assert [p.seq for p in await adapter.track("f1", "d042")] == [7, 6, 5, 4, 3, 2, 1, 0]


async def test_a_failed_request_fails_the_write_and_its_day_marks_are_written_again(
    store: tuple[CassandraStore, StandinCluster],
) -> None:
    adapter, cluster = store
    cluster.nodes = 1  # LOCAL_QUORUM of replication factor 3 cannot be met
    with pytest.raises(StoreUnavailable, match="did not answer"):
        await adapter.write_telemetry([rec("d1", i=0)])
    cluster.nodes = 3
    cluster.requests = 0
    await adapter.write_telemetry([rec("d1", i=1)])
    assert cluster.requests == 3, "track, latest state and the day mark not written before"


async def test_day_marks_are_written_again_on_each_new_day_of_writing(
    store: tuple[CassandraStore, StandinCluster], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A mark lives a day longer than the rows written with it: rows written on a later day
    # (late records for an old day too) need it written again, or it would expire first.
    adapter, cluster = store
    counts = []
    for day in (0, 0, 1, 1, 2):
        now = 1_795_000_000.0 + day * 86_400
        monkeypatch.setattr(time, "time", lambda now=now: now)
        cluster.requests = 0
        await adapter.write_telemetry([rec("d1", i=day)])
        counts.append(cluster.requests)
    assert counts == [3, 2, 3, 2, 3]


async def test_rows_are_bound_to_the_same_bytes_as_the_driver_binds_them(
    store: tuple[CassandraStore, StandinCluster],
) -> None:
    adapter, _ = store
    track = ("f1", "d1", Date(20_775), 1_795_000_000_123, 47.5, 8.25, -3.0, 0.0, 359.5, 100.0)
    cases = {
        "insert_track": [(*track, 7, 604_800), (*track, UNSET_VALUE, 0)],
        "upsert_latest": [("f1", "d1", 1_795_000_000_123, "00000000000000000008 {}", 5)],
        "ack_alert": [(3600, 17, 1_795_000_000_000, None, "f1", "a1")],
    }
    for name, rows in cases.items():
        for row in rows:
            ours = adapter._bind(name, row)
            drivers = adapter._prepared[name].bind(row)
            assert (ours.values, ours.routing_key, ours.is_idempotent, ours.consistency_level) == (
                drivers.values,
                drivers.routing_key,
                drivers.is_idempotent,
                drivers.consistency_level,
            )
