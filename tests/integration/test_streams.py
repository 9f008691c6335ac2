"""The stream worker on the embedded broker (session worker): records in; latest state, track,
alerts (topic and store), drone.latest.v1 and minute statistics out; poison to dead letters."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import pytest

from dronetrack import events, kafka, topics
from dronetrack.record import Telemetry
from dronetrack.settings import Settings
from dronetrack.store import Store, open_store
from streams.state import drone_states
from streams.windows import MINUTE_MS
from tests.integration.conftest import eventually
from tests.integration.streaming import expected_alerts, flight, produce, read_topic


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    s = open_store(settings)
    await s.open()
    yield s
    await s.close()


def fresh_t0() -> int:
    """A minute boundary a few minutes ago, so the flight's minutes are recent."""
    now = int(time.time() * 1000)
    return now - now % MINUTE_MS - 5 * MINUTE_MS


async def test_records_become_latest_state_track_alerts_and_minute_stats(
    settings: Settings, worker: subprocess.Popen[bytes], store: Store
) -> None:
    fleet = f"it-{uuid.uuid4().hex[:8]}"
    t0 = fresh_t0()
    flights = {d: flight(fleet, f"{fleet}-{d}", 200, t0) for d in ("a", "b")}
    records = [r for pair in zip(*flights.values(), strict=True) for r in pair]
    await produce(settings, records)

    async def all_latest() -> list[Telemetry] | None:
        latest = await store.latest(fleet)
        return latest if [r.seq for r in latest] == [199, 199] else None

    latest = await eventually(all_latest, what="both drones at their last record")
    assert [r.battery_pct for r in latest] == [39.0, 39.0]

    track = await store.track(fleet, f"{fleet}-a", limit=1000)
    assert [p.seq for p in track] == list(range(199, -1, -1))

    expected = expected_alerts(settings, records)
    assert {(e.type, e.event) for e in expected} == {
        (t, ev)
        for t in ("battery_low", "battery_critical", "rapid_drain")
        for ev in ("raised", "cleared")
    }

    async def stored_alerts() -> bool:
        rows = await store.drone_alerts(fleet, f"{fleet}-a")
        rows += await store.drone_alerts(fleet, f"{fleet}-b")
        return len(rows) == 6 and all(a.state == "cleared" for a in rows)

    await eventually(stored_alerts, what="six cleared alerts in the store")
    rows = await store.drone_alerts(fleet, f"{fleet}-a")
    by_id = {e.alert_id: e for e in expected if e.event == "cleared"}
    assert {(a.alert_id, a.cleared_at) for a in rows} == {
        (i, e.at) for i, e in by_id.items() if e.drone_id == f"{fleet}-a"
    }
    assert {a.type: a.severity for a in rows} == {
        "battery_low": "warning",
        "battery_critical": "critical",
        "rapid_drain": "warning",
    }

    published = await read_topic(settings, topics.ALERTS, lambda m: fleet.encode() in m.value)
    got = {(e.alert_id, e.event) for e in map(events.decode_alert, (m.value for m in published))}
    assert got == {(e.alert_id, e.event) for e in expected}
    assert all(m.key == events.decode_alert(m.value).drone_id.encode() for m in published)

    raised_per_minute = [
        len(
            {
                e.alert_id
                for e in expected
                if e.event == "raised"
                and t0 + i * MINUTE_MS <= e.raised_at < t0 + (i + 1) * MINUTE_MS
            }
        )
        for i in range(4)
    ]

    # Minutes are merged from partial aggregates as batches come: await the whole count (an
    # earlier check of the first minute alone read a later minute before its last alert).
    async def stats_complete() -> bool:
        rows = await store.fleet_stats(fleet, since_ms=t0, until_ms=t0 + 10 * MINUTE_MS)
        return [m.alerts_raised for m in rows] == raised_per_minute

    await eventually(stats_complete, what="four minutes of fleet statistics, alerts counted")
    minutes = await store.fleet_stats(fleet, since_ms=t0, until_ms=t0 + 10 * MINUTE_MS)
    assert [m.minute for m in minutes] == [t0 + i * MINUTE_MS for i in range(4)]
    first = minutes[0]
    assert (first.drones_active, first.drones_in_flight) == (2, 2)
    assert first.battery_min == 40 - 59 * 0.25
    assert first.battery_mean == 40 - 59 * 0.25
    assert [m.alerts_raised for m in minutes] == raised_per_minute

    latest_msgs = await read_topic(
        settings, topics.LATEST, lambda m: m.key == events.drone_key(fleet, f"{fleet}-a").encode()
    )
    newest = events.decode_latest(latest_msgs[-1].value)
    assert (newest.seq, newest.fleet, newest.active_alerts) == (199, fleet, {})


async def test_two_fleets_may_name_a_drone_alike_and_keep_apart(
    settings: Settings, worker: subprocess.Popen[bytes], store: Store
) -> None:
    """Drone ids are a fleet's own: fleet B's "same" drone, half a second ahead and a thousand
    kilometres away at a full battery, must not make fleet A's records look late, its jumps
    implausible, or its alerts vanish."""
    run = uuid.uuid4().hex[:8]
    fleet_a, fleet_b, drone = f"it-a-{run}", f"it-b-{run}", f"shared-{run}"
    t0 = fresh_t0()
    a = flight(fleet_a, drone, 200, t0)
    b = [
        msgspec.structs.replace(r, fleet=fleet_b, ts=r.ts + 500, lat=r.lat + 10, battery_pct=90.0)
        for r in flight(fleet_b, drone, 200, t0)
    ]
    await produce(settings, [r for pair in zip(a, b, strict=True) for r in pair])

    async def all_stored() -> bool:
        rows = await store.drone_alerts(fleet_a, drone)
        last = [await store.drone(f, drone) for f in (fleet_a, fleet_b)]
        return (
            len(rows) == 3
            and all(x.state == "cleared" for x in rows)
            and all(r is not None and r.seq == 199 for r in last)
        )

    await eventually(all_stored, what="both flights stored, fleet A's three alerts cleared")
    assert await store.drone_alerts(fleet_b, drone) == []
    for fleet, flown in ((fleet_a, a), (fleet_b, b)):
        stored = await store.drone(fleet, drone)
        assert stored is not None
        assert (stored.lat, stored.battery_pct) == (flown[-1].lat, flown[-1].battery_pct)

    async def last_states() -> dict[str, events.LatestState] | None:
        newest = {}
        for m in await read_topic(settings, topics.LATEST, lambda m: drone.encode() in m.value):
            state = events.decode_latest(m.value)
            assert m.key == events.drone_key(state.fleet, drone).encode()
            assert state.implausible_speed_mps is None
            newest[state.fleet] = state
        done = {f: s.seq for f, s in newest.items()} == {fleet_a: 199, fleet_b: 199}
        return newest if done else None

    await eventually(last_states, what="each fleet's drone at its last state on drone.latest.v1")


async def test_a_state_published_under_the_old_key_is_restored_under_the_drone_key(
    settings: Settings,
) -> None:
    """drone.latest.v1 was keyed by drone_id alone before keys named the fleet: a worker taking
    over a partition holds such a state under the drone's key, where its next record finds it."""
    drone = f"old-key-{uuid.uuid4().hex[:8]}"
    (rec,) = flight("it-old", drone, 1, fresh_t0())
    state = events.LatestState(**msgspec.structs.asdict(rec))
    producer = kafka.producer(settings)
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            topics.LATEST, events.encode(state), key=drone.encode(), partition=0
        )
    finally:
        await producer.stop()
    restored = drone_states(settings)
    await restored.load({sent.partition})
    held = restored.get(sent.partition)
    assert drone not in held
    assert held[events.drone_key("it-old", drone)] == state


async def test_a_poison_record_goes_to_the_dead_letter_topic_and_the_stream_goes_on(
    settings: Settings, worker: subprocess.Popen[bytes], store: Store
) -> None:
    fleet = f"it-{uuid.uuid4().hex[:8]}"
    drone = f"{fleet}-p"
    after = flight(fleet, drone, 1, fresh_t0())
    poison = [
        (drone.encode(), b"{not json " + fleet.encode()),
        (drone.encode(), b'{"drone_id": "' + drone.encode() + b'"}'),
    ]
    await produce(settings, [*poison, *after])

    async def stored() -> Telemetry | None:
        return await store.drone(fleet, drone)

    assert (await eventually(stored, what="the record after the poison")).seq == 0

    async def dead() -> list[object] | None:
        found = await read_topic(settings, topics.DEAD_LETTER, lambda m: m.key == drone.encode())
        return found if len(found) == 2 else None

    letters = await eventually(dead, what="two dead letters")
    assert [m.value for m in letters] == [v for _, v in poison], "the original bytes, unchanged"
    for m in letters:
        headers = dict(m.headers)
        assert headers["dlq.reason"].startswith(b"undecodable: ")
        assert headers["dlq.topic"] == topics.TELEMETRY.encode()
        assert int(headers["dlq.offset"]) >= 0
    assert (
        b"required field" in dict(letters[1].headers)["dlq.reason"].lower()
        or b"missing" in dict(letters[1].headers)["dlq.reason"].lower()
    )


async def test_the_worker_serves_health_readiness_and_metrics(
    settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    base = f"http://{settings.streams_web_host}:{settings.streams_web_port}"
    async with aiohttp.ClientSession() as http:

        async def ready() -> bool:
            try:
                async with http.get(f"{base}/readyz") as r:
                    return r.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, what="the worker's /readyz")
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200
        async with http.get(f"{base}/metrics") as r:
            text = await r.text()
    for name in (
        "streams_events_total",
        "streams_freshness_seconds_bucket",
        "streams_processing_latency_seconds_bucket",
        "streams_sink_write_seconds_bucket",
        "streams_sink_errors_total",
        "streams_alerts_total",
        "streams_consumer_lag",
    ):
        assert name in text, name
