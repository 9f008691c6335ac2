"""What every store adapter must do, whatever holds the tables."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from dronetrack.record import Telemetry
from dronetrack.store import (
    Alert,
    Channel,
    FleetStats,
    Flight,
    Retention,
    Store,
    User,
    alert_id,
)
from tests.contract.conftest import StoreFactory
from tests.integration.conftest import eventually

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


async def test_the_newest_record_of_a_batch_wins_in_any_order(store: Store) -> None:
    # Out of order within one batch; at equal ts the greater seq wins.
    await store.write_telemetry([rec(i=3), rec(i=9), rec(i=1), rec("d2", i=4)])
    await store.write_telemetry([rec("d2", i=4, seq=7, lat=1.5), rec("d2", i=4, seq=6)])
    latest = {t.drone_id: t for t in await store.latest("f1")}
    assert (latest["d1"].seq, latest["d2"].seq, latest["d2"].lat) == (9, 7, 1.5)
    assert [p.seq for p in await store.track("f1", "d1")] == [9, 3, 1]


async def test_at_equal_event_time_the_greater_seq_wins_over_its_whole_range(
    store: Store,
) -> None:
    # Written one batch at a time, newer first, so only the store's own ordering decides.
    cases = [("d1", 1000, 999), ("d2", 2**63 - 1, 2**62), ("d3", 0, None), ("d4", 123_457, 1)]
    for drone, newer, older in cases:
        await store.write_telemetry([rec(drone, i=7, seq=newer)])
        await store.write_telemetry([rec(drone, i=7, seq=older, lat=1.5)])
    latest = {t.drone_id: t for t in await store.latest("f1")}
    assert [(latest[d].seq, latest[d].lat) for d in ("d1", "d2", "d3", "d4")] == [
        (1000, 47.0007),
        (2**63 - 1, 47.0007),
        (0, 47.0007),
        (123_457, 47.0007),
    ]
    await store.write_telemetry([rec("d1", i=7, seq=1001, lat=2.5), rec("d1", i=7, seq=998)])
    newest = await store.drone("f1", "d1")
    assert newest is not None
    assert (newest.seq, newest.lat) == (1001, 2.5)


async def test_track_is_newest_first_and_pages(store: Store) -> None:
    await store.write_telemetry([rec(i=i) for i in (3, 0, 4, 1, 2)])
    first = await store.track("f1", "d1", limit=2)
    assert [p.seq for p in first] == [4, 3]
    rest = await store.track("f1", "d1", limit=10, before_ms=first[-1].ts)
    assert [p.seq for p in rest] == [2, 1, 0]
    window = await store.track("f1", "d1", since_ms=T0 + 1000, before_ms=T0 + 3000)
    assert [p.seq for p in window] == [2, 1]
    assert await store.track("f1", "d1", limit=0) == []


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


# -- days, paging, retention, isolation, concurrency --------------------------------------------
DAY = 86_400_000
MIDNIGHT = (T0 // DAY + 1) * DAY  # the first UTC midnight after T0


def at(ts: int, drone: str = "d1", fleet: str = "f1", seq: int = 0) -> Telemetry:
    return rec(drone, fleet=fleet, ts=ts, seq=seq, received_at=ts + 5)


async def test_tracks_are_newest_first_across_day_boundaries(store: Store) -> None:
    # Points either side of midnight, a day with nothing, and a point two days on.
    times = [MIDNIGHT - 2000, MIDNIGHT - 1, MIDNIGHT, MIDNIGHT + 1500, MIDNIGHT + 2 * DAY + 7]
    times += [MIDNIGHT - 3 * DAY]
    await store.write_telemetry([at(t, seq=i) for i, t in enumerate(times)])
    newest_first = sorted(times, reverse=True)
    assert [p.ts for p in await store.track("f1", "d1")] == newest_first

    page1 = await store.track("f1", "d1", limit=3)
    page2 = await store.track("f1", "d1", limit=3, before_ms=page1[-1].ts)
    assert [p.ts for p in page1 + page2] == newest_first

    window = await store.track("f1", "d1", since_ms=MIDNIGHT - 1, before_ms=MIDNIGHT + 1500)
    assert [p.ts for p in window] == [MIDNIGHT, MIDNIGHT - 1]
    assert (
        await store.track("f1", "d1", since_ms=MIDNIGHT + DAY, before_ms=MIDNIGHT + 2 * DAY) == []
    )


async def test_long_tracks_page_without_gaps_or_repeats(store: Store) -> None:
    # Twenty minutes at 10 Hz across midnight: more rows in one day than one driver page (5000).
    start = MIDNIGHT - 700_000
    times = [start + i * 100 for i in range(12_000)]
    for i in range(0, len(times), 1_000):
        await store.write_telemetry([at(t, seq=j + i) for j, t in enumerate(times[i : i + 1_000])])

    whole = await store.track("f1", "d1", limit=20_000)
    assert [p.ts for p in whole] == times[::-1]

    seen: list[int] = []
    cursor: int | None = None
    while True:
        page = await store.track("f1", "d1", limit=700, before_ms=cursor)
        if not page:
            break
        assert len(page) <= 700
        seen += [p.ts for p in page]
        cursor = page[-1].ts
    assert seen == times[::-1]


async def test_rows_expire_after_their_retention(store_factory: StoreFactory) -> None:
    short = await store_factory(Retention(track_s=2, alerts_s=2, stats_s=2))
    await short.write_telemetry([at(T0 + i) for i in range(3)])
    await short.write_alerts([alert()])
    await short.write_fleet_stats(
        [
            FleetStats(
                fleet="f1",
                minute=T0,
                drones_active=1,
                drones_in_flight=1,
                battery_mean=50.0,
                battery_min=50.0,
                alerts_raised=1,
            )
        ]
    )
    window = {"since_ms": T0, "until_ms": T0 + 60_000}
    assert len(await short.track("f1", "d1")) == 3
    assert len(await short.alerts("f1", **window)) == 1
    assert len(await short.fleet_stats("f1", **window)) == 1

    async def all_gone() -> bool:
        await short.purge_expired()
        return (
            await short.track("f1", "d1") == []
            and await short.alerts("f1", **window) == []
            and await short.drone_alerts("f1", "d1") == []
            and await short.fleet_stats("f1", **window) == []
        )

    await eventually(all_gone, timeout=20, what="rows past their retention to disappear")
    # Latest state is not a time series: it stays until the drone reports again.
    assert await short.drone("f1", "d1") is not None


async def test_alerts_stats_and_acknowledgements_are_scoped_to_their_fleet(store: Store) -> None:
    await store.write_alerts([alert(fleet="f1"), alert(fleet="f2", detail="other")])
    await store.write_fleet_stats(
        [
            FleetStats(
                fleet=f,
                minute=T0,
                drones_active=n,
                drones_in_flight=n,
                battery_mean=50.0,
                battery_min=40.0,
                alerts_raised=0,
            )
            for f, n in (("f1", 1), ("f2", 2))
        ]
    )
    await store.write_telemetry([rec(fleet="f2", i=i) for i in range(3)])
    window = {"since_ms": T0, "until_ms": T0 + 60_000}

    [mine] = await store.alerts("f1", **window)
    assert mine.fleet == "f1"
    assert [a.fleet for a in await store.drone_alerts("f2", "d1")] == ["f2"]
    assert await store.alerts("f3", **window) == []
    assert await store.drone_alerts("f3", "d1") == []
    assert [s.drones_active for s in await store.fleet_stats("f2", **window)] == [2]
    assert await store.track("f1", "d1") == []
    assert await store.latest("f1") == []

    acked = await store.acknowledge_alert("f1", mine.alert_id, "ada", T0 + 5)
    assert acked is not None
    assert acked.fleet == "f1"
    [theirs] = await store.alerts("f2", **window)
    assert theirs.state == "active", "acknowledging one fleet's alert leaves another's alone"


async def test_the_earliest_acknowledgement_wins_in_any_order(store: Store) -> None:
    raised = alert()
    await store.write_alerts([raised])
    await store.acknowledge_alert("f1", raised.alert_id, "bob", T0 + 20)
    acked = await store.acknowledge_alert("f1", raised.alert_id, "ada", T0 + 10)
    assert acked is not None
    assert (acked.acknowledged_by, acked.acknowledged_at) == ("ada", T0 + 10)
    [listed] = await store.alerts("f1", since_ms=T0, until_ms=T0 + 1)
    [by_drone] = await store.drone_alerts("f1", "d1")
    assert listed == by_drone == acked


async def test_alerts_and_stats_span_days(store: Store) -> None:
    raised = [MIDNIGHT - DAY - 5, MIDNIGHT - 5, MIDNIGHT + 5, MIDNIGHT + DAY + 5]
    await store.write_alerts([alert(raised_at=t) for t in raised])
    listed = await store.alerts("f1", since_ms=MIDNIGHT - 10, until_ms=MIDNIGHT + 2 * DAY)
    assert [a.raised_at for a in listed] == [MIDNIGHT + DAY + 5, MIDNIGHT + 5, MIDNIGHT - 5]
    two = await store.alerts("f1", since_ms=0, until_ms=MIDNIGHT + 2 * DAY, limit=2)
    assert [a.raised_at for a in two] == [MIDNIGHT + DAY + 5, MIDNIGHT + 5]
    assert [a.raised_at for a in await store.drone_alerts("f1", "d1", limit=3)] == sorted(
        raised, reverse=True
    )[:3]

    minutes = [MIDNIGHT - 120_000, MIDNIGHT - 60_000, MIDNIGHT, MIDNIGHT + 60_000]
    await store.write_fleet_stats(
        [
            FleetStats(
                fleet="f1",
                minute=m,
                drones_active=i,
                drones_in_flight=i,
                battery_mean=1.0,
                battery_min=1.0,
                alerts_raised=0,
            )
            for i, m in enumerate(minutes)
        ]
    )
    stats = await store.fleet_stats("f1", since_ms=MIDNIGHT - 60_000, until_ms=MIDNIGHT + 60_001)
    assert [s.minute for s in stats] == minutes[1:], "oldest first"


async def test_concurrent_writers_lose_and_duplicate_nothing(store_factory: StoreFactory) -> None:
    a, b = await store_factory(), await store_factory()
    batches = [
        [rec(f"d{d}", i=i) for i in range(start, start + 50)]
        for d in range(3)
        for start in range(0, 200, 50)
    ]
    # Both writers write every batch (as two workers would around a rebalance), interleaved.
    await asyncio.gather(
        *(a.write_telemetry(batch) for batch in batches),
        *(b.write_telemetry(batch) for batch in reversed(batches)),
        a.write_alerts([alert(raised_at=T0 + i) for i in range(20)]),
        b.write_alerts([alert(raised_at=T0 + i) for i in range(10, 30)]),
    )
    for d in range(3):
        track = await a.track("f1", f"d{d}", limit=1_000)
        assert [p.seq for p in track] == list(range(199, -1, -1))
    assert [r.seq for r in await b.latest("f1")] == [199, 199, 199]
    alerts = await b.alerts("f1", since_ms=T0, until_ms=T0 + 1_000)
    assert [x.raised_at for x in alerts] == [T0 + i for i in range(29, -1, -1)]


async def test_users_can_be_listed_and_disabled(store: Store) -> None:
    for name in ("bob", "ada"):
        await store.put_user(User(name=name, password_hash=f"$argon2id${name}", fleets=["f1"]))
    assert [u.name for u in await store.list_users()] == ["ada", "bob"]
    assert await store.disable_user("bob") is True
    assert await store.disable_user("zed") is False
    bob = await store.get_user("bob")
    assert bob is not None
    assert bob.disabled
    assert [u.disabled for u in await store.list_users()] == [False, True]
    assert await store.get_user("zed") is None


async def test_ending_a_users_sessions_is_kept_and_survives_a_new_password(
    store_factory: StoreFactory,
) -> None:
    store = await store_factory()
    await store.put_user(User(name="ada", password_hash="$argon2id$1", fleets=["f1"]))
    assert (await store.get_user("ada")) == User(
        name="ada", password_hash="$argon2id$1", fleets=["f1"], sessions_valid_after=0
    )
    assert await store.end_sessions("ada", T0 + 5_000) is True
    assert await store.end_sessions("zed", T0) is False
    assert await store.get_user("zed") is None, "ending an unknown user's sessions makes no user"
    assert await store.end_sessions("ada", T0 + 1_000) is True, "an earlier end arriving late"
    other = await store_factory()  # another process, as the other replicas are
    ada = await other.get_user("ada")
    assert ada is not None
    assert ada.sessions_valid_after == T0 + 5_000, "the latest end wins, whatever the order"
    await other.put_user(User(name="ada", password_hash="$argon2id$2", fleets=["f1", "f2"]))
    ada = await store.get_user("ada")
    assert ada == User(
        name="ada",
        password_hash="$argon2id$2",
        fleets=["f1", "f2"],
        sessions_valid_after=T0 + 5_000,
    ), "a new password or new fleets do not bring ended sessions back"
    assert [u.sessions_valid_after for u in await store.list_users()] == [T0 + 5_000]


async def test_login_failures_are_counted_in_a_window_until_cleared(store: Store) -> None:
    # Times relative to the clock: Cassandra expires them by TTL from their writing.
    now = time.time_ns() // 1_000_000
    for i in range(4):
        await store.note_login_failure("name:ada", now - 4_000 + i * 1_000, window_s=60)
    await store.note_login_failure("name:bob", now - 500, window_s=60)
    assert await store.login_failures("name:ada", since_ms=now - 60_000, limit=10) == [
        now - 1_000,
        now - 2_000,
        now - 3_000,
        now - 4_000,
    ], "newest first"
    assert await store.login_failures("name:ada", since_ms=now - 60_000, limit=2) == [
        now - 1_000,
        now - 2_000,
    ]
    assert await store.login_failures("name:ada", since_ms=now - 2_500, limit=10) == [
        now - 1_000,
        now - 2_000,
    ], "only those inside the window"
    assert await store.login_failures("name:nobody", since_ms=0, limit=10) == []
    await store.clear_login_failures("name:ada", now - 100, window_s=60)
    assert await store.login_failures("name:ada", since_ms=now - 60_000, limit=10) == []
    await store.note_login_failure("name:ada", now, window_s=60)
    assert await store.login_failures("name:ada", since_ms=now - 60_000, limit=10) == [now]
    assert await store.login_failures("name:bob", since_ms=now - 60_000, limit=10) == [now - 500], (
        "other scopes are not cleared"
    )


def channel(fleet: str = "f1", channel_id: str = "ops", **over: Any) -> Channel:
    fields: dict[str, Any] = {
        "fleet": fleet,
        "channel_id": channel_id,
        "kind": "webhook",
        "target": "https://hooks.example.com/dronetrack",
        "created_at": T0,
        "format": "json",
        "secret_box": "gAAAAB-ciphertext",
        "alert_types": ["battery_critical", "link_lost"],
        "severities": ["critical"],
    }
    return Channel(**{**fields, **over})


async def test_notification_channels_round_trip_per_fleet(store: Store) -> None:
    ops = channel()
    mail = channel(
        channel_id="duty-mail",
        kind="email",
        target="duty@example.com",
        secret_box="",
        alert_types=[],
        severities=[],
    )
    other = channel(fleet="f2", channel_id="ops", target="https://f2.example.com/hook")
    for c in (ops, mail, other):
        await store.put_channel(c)
    assert await store.channels("f1") == [mail, ops]
    assert await store.channels("f2") == [other]
    assert await store.channels("f3") == []


async def test_a_channel_is_replaced_by_id_and_removed(store: Store) -> None:
    await store.put_channel(channel())
    replaced = channel(target="https://hooks.example.com/v2", severities=["warning", "critical"])
    await store.put_channel(replaced)
    [found] = await store.channels("f1")
    assert found.target == "https://hooks.example.com/v2"
    assert found.severities == ["critical", "warning"]
    assert await store.remove_channel("f1", "ops") is True
    assert await store.remove_channel("f1", "ops") is False
    assert await store.remove_channel("f2", "nope") is False
    assert await store.channels("f1") == []


async def test_channel_listings_never_show_the_secret(store: Store) -> None:
    await store.put_channel(channel())
    [found] = await store.channels("f1")
    assert found.secret_box == "gAAAAB-ciphertext", "the notifier needs the sealed secret"
    shown = found.public()
    assert "secret_box" not in shown
    assert shown["signed"] is True
    assert "ciphertext" not in repr(found)


def flight(drone: str = "d1", start: int = T0, fleet: str = "f1", **over: Any) -> Flight:
    fields: dict[str, Any] = {
        "fleet": fleet,
        "drone_id": drone,
        "flight_id": f"{fleet}/{drone}/{start}",
        "start": start,
        "end": start + 600_000,
        "duration_ms": 600_000,
        "ended_by": "landed",
        "distance_m": 4321.5,
        "max_alt_m": 512.5,
        "max_speed_mps": 17.25,
        "battery_start_pct": 96.0,
        "battery_end_pct": 51.0,
        "battery_used_pct_per_min": 4.5,
        "points": 600,
        "alert_ids": [f"{drone}:battery_low:{start + 500_000}"],
    }
    fields.update(over)
    return Flight(**fields)


async def test_flights_round_trip_newest_first_by_drone(store: Store) -> None:
    first = flight(start=T0)
    second = flight(start=T0 + 3_600_000, ended_by="link_lost", alert_ids=[])
    lost = flight(start=T0 + 7_200_000, duration_ms=0, battery_used_pct_per_min=None)
    other_drone = flight(drone="d2", start=T0)
    await store.write_flights([first, second, other_drone])
    await store.write_flights([lost, first])  # a replay writes the same row again
    assert await store.flights("f1", "d1") == [lost, second, first]
    assert await store.flights("f1", "d1", limit=2) == [lost, second]
    assert await store.flights("f1", "d1", since_ms=T0 + 1, until_ms=T0 + 7_200_000) == [second]
    assert await store.flights("f1", "d2") == [other_drone]
    assert await store.flight("f1", f"f1/d1/{T0 + 3_600_000}") == second
    assert await store.flight("f1", f"f1/d1/{T0 + 1}") is None


async def test_flights_are_scoped_to_their_fleet(store: Store) -> None:
    ours, theirs = flight(), flight(fleet="f2")
    await store.write_flights([ours, theirs])
    assert await store.flights("f1", "d1") == [ours]
    assert await store.flights("f2", "d1") == [theirs]
    assert await store.flight("f2", f"f1/d1/{T0}") is None
    assert await store.flight("f1", "not-an-id") is None
    assert await store.flight("f1", f"f1/d1/x{T0}") is None
