"""What every store adapter must do, whatever holds the tables."""

from __future__ import annotations

from typing import Any

from dronetrack.record import Telemetry
from dronetrack.store import Alert, FleetStats, Store, User, alert_id

T0 = 1_795_000_000_000


def rec(drone: str = "d1", i: int = 0, fleet: str = "f1", **over: Any) -> Telemetry:
    fields: dict[str, Any] = {
        "fleet": fleet,
        "drone_id": drone,
        "ts": T0 + i * 1000,
        "lat": 47.0 + i / 1e4,
        "lon": 8.0,
        "alt_m": 100.0,
        "speed_mps": 10.0,
        "heading_deg": 90.0,
        "battery_pct": 90.0 - i / 10,
        "seq": i,
        "received_at": T0 + i * 1000 + 5,
    }
    return Telemetry(**{**fields, **over})


async def test_replaying_records_changes_nothing(store: Store) -> None:
    batch = [rec(i=i) for i in range(10)]
    await store.write_telemetry(batch)
    before = (await store.latest("f1"), await store.track("f1", "d1"))
    await store.write_telemetry(batch)
    await store.write_telemetry(batch[3:7])
    assert (await store.latest("f1"), await store.track("f1", "d1")) == before
    assert len(before[1]) == 10


async def test_latest_state_never_moves_backwards(store: Store) -> None:
    await store.write_telemetry([rec(i=5)])
    await store.write_telemetry([rec(i=2), rec(i=4)])
    latest = await store.drone("f1", "d1")
    assert latest is not None
    assert latest.seq == 5
    await store.write_telemetry([rec(i=6)])
    assert (await store.latest("f1"))[0].seq == 6


async def test_track_is_newest_first_and_pages(store: Store) -> None:
    await store.write_telemetry([rec(i=i) for i in (3, 0, 4, 1, 2)])
    first = await store.track("f1", "d1", limit=2)
    assert [p.seq for p in first] == [4, 3]
    rest = await store.track("f1", "d1", limit=10, before_ms=first[-1].ts)
    assert [p.seq for p in rest] == [2, 1, 0]
    window = await store.track("f1", "d1", since_ms=T0 + 1000, before_ms=T0 + 3000)
    assert [p.seq for p in window] == [2, 1]


async def test_every_read_is_scoped_to_its_fleet(store: Store) -> None:
    await store.write_telemetry([rec("d1", fleet="f1"), rec("d1", fleet="f2", lat=10.0)])
    assert [d.fleet for d in await store.latest("f1")] == ["f1"]
    other = await store.drone("f2", "d1")
    assert other is not None
    assert other.lat == 10.0
    assert await store.drone("f3", "d1") is None
    assert await store.track("f3", "d1") == []


def alert(**over: Any) -> Alert:
    fields: dict[str, Any] = {
        "fleet": "f1",
        "drone_id": "d1",
        "type": "battery_low",
        "severity": "warning",
        "raised_at": T0,
        "detail": "battery 19%",
    }
    fields.update(over)
    return Alert(
        alert_id=alert_id(fields["drone_id"], fields["type"], fields["raised_at"]), **fields
    )


async def test_alert_lifecycle_raise_acknowledge_clear(store: Store) -> None:
    raised = alert()
    await store.write_alerts([raised, raised])
    [only] = await store.alerts("f1", since_ms=T0, until_ms=T0 + 1)
    assert only.state == "active"

    acked = await store.acknowledge_alert("f1", raised.alert_id, "ada", T0 + 10)
    assert acked is not None
    assert (acked.state, acked.acknowledged_by) == ("acknowledged", "ada")
    again = await store.acknowledge_alert("f1", raised.alert_id, "bob", T0 + 20)
    assert again is not None
    assert again.acknowledged_by == "ada", "the first acknowledgement wins"

    cleared = alert(cleared_at=T0 + 30)
    await store.write_alerts([cleared, raised])  # a replayed raise does not undo the clear
    [only] = await store.drone_alerts("f1", "d1")
    assert (only.state, only.cleared_at, only.acknowledged_by) == ("cleared", T0 + 30, "ada")


async def test_alerts_are_listed_newest_first_in_a_window_and_per_fleet(store: Store) -> None:
    await store.write_alerts([alert(raised_at=T0 + i) for i in range(5)])
    await store.write_alerts([alert(fleet="f2", raised_at=T0 + 2)])
    listed = await store.alerts("f1", since_ms=T0 + 1, until_ms=T0 + 4)
    assert [a.raised_at for a in listed] == [T0 + 3, T0 + 2, T0 + 1]
    assert await store.acknowledge_alert("f2", listed[0].alert_id, "eve", T0) is None


async def test_fleet_stats_upsert_by_minute(store: Store) -> None:
    def minute(m: int, active: int) -> FleetStats:
        return FleetStats(
            fleet="f1",
            minute=T0 + m * 60_000,
            drones_active=active,
            drones_in_flight=active,
            battery_mean=50.0,
            battery_min=10.0,
            alerts_raised=0,
        )

    await store.write_fleet_stats([minute(0, 3), minute(1, 4)])
    await store.write_fleet_stats([minute(1, 5)])
    stats = await store.fleet_stats("f1", since_ms=T0, until_ms=T0 + 120_000)
    assert [(s.minute - T0, s.drones_active) for s in stats] == [(0, 3), (60_000, 5)]
    assert await store.fleet_stats("f2", since_ms=T0, until_ms=T0 + 120_000) == []


async def test_users_round_trip(store: Store) -> None:
    user = User(name="ada", password_hash="$argon2id$...", fleets=["f1", "f2"])
    await store.put_user(user)
    assert await store.get_user("ada") == user
    assert await store.get_user("bob") is None
