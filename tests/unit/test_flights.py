"""Flight segmentation, rule by rule, with literal expected flights and no I/O."""

from __future__ import annotations

from typing import Any

from dronetrack import events, record
from dronetrack.events import LatestState
from dronetrack.record import Telemetry
from dronetrack.store import Flight
from streams import alerts, flights, process
from streams.flights import FlightRules
from streams.plausibility import distance_m

# rapid_drain set high: these flights use a battery quickly on purpose.
ALERT_RULES = alerts.Rules(
    link_lost_after_ms=30_000, max_speed_mps=150, drain_pct_per_min=50, drain_clear_pct_per_min=40
)
RULES = FlightRules(
    takeoff_speed_mps=3.0, takeoff_climb_m=5.0, link_lost_after_ms=120_000, max_speed_mps=150
)
T0 = 1_795_000_000_000


def rec(s: int, lat: float, alt: float, speed: float, battery: float, **over: Any) -> Telemetry:
    """A record ``s`` seconds after T0 (seq = s)."""
    fields: dict[str, Any] = {
        "drone_id": "d1",
        "fleet": "f",
        "ts": T0 + s * 1000,
        "received_at": T0 + s * 1000 + 5,
        "lat": lat,
        "lon": 8.0,
        "alt_m": alt,
        "speed_mps": speed,
        "heading_deg": 0.0,
        "battery_pct": battery,
        "seq": s,
    }
    fields.update(over)
    return Telemetry(**fields)


def run(
    records: list[Telemetry], state: LatestState | None = None
) -> tuple[LatestState | None, list[Flight]]:
    """What the worker does per record: the alert rules, then the flight rules."""
    done: list[Flight] = []
    for r in records:
        new, evs = alerts.apply(state, r, ALERT_RULES)
        if new is None:
            continue
        state, finished = flights.step(state, new, evs, RULES)
        done.extend(finished)
    return state, done


STATUS_FLIGHT = [
    rec(0, 47.000, 400, 0.0, 90, status="ground"),
    rec(10, 47.001, 420, 12.0, 89, status="airborne"),
    rec(20, 47.002, 450, 12.5, 88, status="airborne"),
    rec(30, 47.003, 450, 12.0, 87, status="airborne"),
    rec(40, 47.004, 430, 11.0, 86, status="airborne"),
    rec(50, 47.005, 400, 0.0, 85, status="ground"),
    rec(60, 47.005, 400, 0.0, 85, status="ground"),
]
STATUS_EXPECTED = Flight(
    fleet="f",
    drone_id="d1",
    flight_id=f"f/d1/{T0 + 10_000}",
    start=T0 + 10_000,
    end=T0 + 50_000,
    duration_ms=40_000,
    ended_by="landed",
    distance_m=444.8,  # 0.004 degrees of latitude
    max_alt_m=450.0,
    max_speed_mps=12.5,
    battery_start_pct=89.0,
    battery_end_pct=85.0,
    battery_used_pct_per_min=6.0,
    points=5,
    alert_ids=[],
)


def test_take_off_and_landing_on_status() -> None:
    state, done = run(STATUS_FLIGHT)
    assert done == [STATUS_EXPECTED]
    assert state is not None
    assert state.flight is None


def test_flight_in_progress_is_held_in_the_state() -> None:
    state, done = run(STATUS_FLIGHT[:3])
    assert done == []
    assert state is not None
    assert state.flight is not None
    assert state.flight.start == T0 + 10_000
    assert state.flight.points == 2


def test_take_off_and_landing_on_speed_and_altitude() -> None:
    state, done = run(
        [
            rec(0, 47.000, 400, 0.0, 80),
            rec(10, 47.000, 401, 5.0, 79),  # moving: take-off
            rec(20, 47.001, 430, 0.0, 78),  # hovering 30 m up: still flying
            rec(30, 47.002, 420, 4.0, 77),
            rec(40, 47.002, 402, 0.0, 76),  # 2 m above the ground it left: landed
        ]
    )
    assert done == [
        Flight(
            fleet="f",
            drone_id="d1",
            flight_id=f"f/d1/{T0 + 10_000}",
            start=T0 + 10_000,
            end=T0 + 40_000,
            duration_ms=30_000,
            ended_by="landed",
            distance_m=222.4,
            max_alt_m=430.0,
            max_speed_mps=5.0,
            battery_start_pct=79.0,
            battery_end_pct=76.0,
            battery_used_pct_per_min=6.0,
            points=4,
        )
    ]
    assert state is not None
    assert state.flight is None
    assert state.ground_alt_m == 402.0


def test_lost_link_ends_the_flight_at_its_last_record() -> None:
    state, done = run(
        [
            rec(0, 47.000, 400, 10.0, 70, status="airborne"),
            rec(10, 47.001, 400, 10.0, 69, status="airborne"),
            rec(20, 47.002, 400, 10.0, 68, status="airborne"),
            # 130 s of silence, then the drone is heard again, still flying: a new flight
            rec(150, 47.010, 300, 8.0, 60, status="airborne"),
        ]
    )
    assert state is not None
    assert state.flight is not None
    assert state.flight.start == T0 + 150_000
    assert len(done) == 1
    lost = done[0]
    assert (lost.flight_id, lost.start, lost.end, lost.ended_by) == (
        f"f/d1/{T0}",
        T0,
        T0 + 20_000,
        "link_lost",
    )
    assert (lost.distance_m, lost.battery_start_pct, lost.battery_end_pct, lost.points) == (
        222.4,
        70.0,
        68.0,
        3,
    )
    # The link_lost alert the rules raised in the gap belongs to the flight that ended.
    assert lost.alert_ids == [f"d1:link_lost:{T0 + 50_000}"]


def test_worker_clock_ends_a_silent_flight_as_the_next_record_would() -> None:
    records = [
        rec(0, 47.000, 400, 10.0, 70, status="airborne"),
        rec(10, 47.001, 400, 10.0, 69, status="airborne"),
    ]
    state, _ = run(records)
    assert state is not None
    _, by_record = run([rec(140, 47.01, 400, 10.0, 60, status="airborne")], state)
    drones = {"f/d1": state}
    heard = T0 + 10_005
    # The worker's timer: link_lost raised at 30 s, the flight ended at 120 s of silence.
    raised = process.check_links({0: drones}, heard + 30_000, ALERT_RULES, RULES)
    assert [e.alert_id for e in raised.alerts] == [f"d1:link_lost:{T0 + 40_000}"]
    assert raised.flights == []
    assert process.check_links({0: drones}, heard + 119_999, ALERT_RULES, RULES).flights == []
    ended = process.check_links({0: drones}, heard + 120_000, ALERT_RULES, RULES)
    assert ended.flights == [(0, f) for f in by_record]
    assert [(f.start, f.end, f.ended_by, f.alert_ids) for _, f in ended.flights] == [
        (T0, T0 + 10_000, "link_lost", [f"d1:link_lost:{T0 + 40_000}"])
    ]
    assert drones["f/d1"].flight is None
    assert ended.latest["f/d1"][1].flight is None


def test_gps_jitter_on_the_ground_makes_no_flight() -> None:
    jitter = [
        rec(s, 47.0 + d, 400 + a, v, 95)
        for s, d, a, v in [
            (0, 0.0, 0.0, 0.0),
            (1, 0.00002, 1.5, 0.8),
            (2, -0.00001, -2.0, 1.4),
            (3, 0.00003, 3.9, 0.3),
            (4, 0.0, -1.0, 2.9),
            (5, 0.00001, 2.5, 0.0),
        ]
    ]
    state, done = run(jitter)
    assert done == []
    assert state is not None
    assert state.flight is None


def test_implausible_jump_is_left_out_of_the_distance() -> None:
    _, done = run(
        [
            rec(0, 47.000, 400, 10.0, 70, status="airborne"),
            rec(10, 47.001, 400, 10.0, 69, status="airborne"),
            rec(11, 48.000, 400, 10.0, 69, status="airborne"),  # 111 km in a second
            rec(20, 47.002, 400, 10.0, 68, status="airborne"),
            rec(30, 47.002, 400, 0.0, 67, status="ground"),
        ]
    )
    assert [(f.distance_m, f.points) for f in done] == [(222.4, 5)]


def test_alerts_raised_in_flight_are_listed() -> None:
    _, done = run(
        [
            rec(0, 47.000, 400, 10.0, 22, status="airborne"),
            rec(10, 47.001, 400, 10.0, 20, status="airborne"),  # battery_low
            rec(20, 47.001, 400, 0.0, 19, status="ground"),
        ]
    )
    assert [f.alert_ids for f in done] == [[f"d1:battery_low:{T0 + 10_000}"]]


def test_replay_duplicates_and_late_records_give_the_same_flights() -> None:
    _, first = run(STATUS_FLIGHT)
    shuffled = [
        *STATUS_FLIGHT[:3],
        STATUS_FLIGHT[1],  # duplicate
        STATUS_FLIGHT[0],  # older than the state
        *STATUS_FLIGHT[3:5],
        STATUS_FLIGHT[2],
        *STATUS_FLIGHT[5:],
        STATUS_FLIGHT[3],
    ]
    _, second = run(shuffled)
    _, replayed = run(STATUS_FLIGHT)
    assert first == second == replayed == [STATUS_EXPECTED]


def test_a_restored_state_continues_the_flight() -> None:
    state, _ = run(STATUS_FLIGHT[:3])
    assert state is not None
    restored = events.decode_latest(events.encode(state))
    _, done = run(STATUS_FLIGHT[3:], restored)
    assert done == [STATUS_EXPECTED]


def test_a_state_written_before_flights_still_decodes() -> None:
    old = (
        b'{"drone_id":"d1","ts":1795000000000,"lat":47.0,"lon":8.0,"alt_m":420.0,'
        b'"speed_mps":12.0,"heading_deg":0.0,"battery_pct":80.0,"status":"airborne",'
        b'"fleet":"f","received_at":1795000000005,"drain_checkpoints":[[1795000000000,80.0]]}'
    )
    state = events.decode_latest(old)
    assert state.flight is None
    assert state.ground_alt_m is None
    # Still flying: the next record starts a flight there.
    nxt = rec(10, 47.001, 420, 12.0, 79, status="airborne")
    new, evs = alerts.apply(state, nxt, ALERT_RULES)
    assert new is not None
    after, done = flights.step(state, new, evs, RULES)
    assert done == ()
    assert after.flight is not None
    assert after.flight.start == T0 + 10_000


def raws(records: list[Telemetry], history: bool = False) -> list[process.Raw]:
    headers = [("dronetrack-backfill", b"1")] if history else []
    return [
        process.Raw(partition=0, offset=i, key=b"d1", value=record.encode(r), headers=headers)
        for i, r in enumerate(records)
    ]


def test_the_worker_batch_emits_finished_flights() -> None:
    states: dict[int, dict[str, LatestState]] = {}
    out = process.process(
        raws(STATUS_FLIGHT), lambda p: states.setdefault(p, {}), ALERT_RULES, RULES
    )
    assert out.flights == [(0, STATUS_EXPECTED)]
    assert out.latest["f/d1"][1].flight is None


def test_history_records_make_no_flight() -> None:
    states: dict[int, dict[str, LatestState]] = {}
    out = process.process(
        raws(STATUS_FLIGHT, history=True), lambda p: states.setdefault(p, {}), ALERT_RULES, RULES
    )
    assert out.flights == []
    assert len(out.records) == len(STATUS_FLIGHT)
    assert states == {}


def test_legs_agree_with_the_haversine() -> None:
    """The flight's cheap leg formula against the plausibility check's haversine, over short
    legs at mid and high latitude, south, on the equator and across the antimeridian."""
    for lat1, lon1, lat2, lon2 in [
        (47.0, 8.0, 47.001, 8.0),
        (47.0, 8.0, 47.1, 8.15),
        (-33.9, 151.2, -33.8, 151.1),
        (64.0, 179.99, 64.01, -179.99),
        (0.0, 0.0, 0.0, 0.1),
    ]:
        want = distance_m(lat1, lon1, lat2, lon2)
        assert abs(flights.leg_m(lat1, lon1, lat2, lon2) - want) <= want * 1e-4
    assert round(flights.leg_m(47.0, 8.0, 47.001, 8.0), 3) == 111.195
