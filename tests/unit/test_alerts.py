"""The alert state machine, rule by rule, with no I/O."""

from __future__ import annotations

from typing import Any

from dronetrack.events import AlertEvent, LatestState
from dronetrack.record import Telemetry
from dronetrack.settings import Settings
from dronetrack.store import alert_id
from streams.alerts import Rules, apply, check_link, drain_rate, in_flight

RULES = Rules(
    low_pct=20,
    low_clear_pct=25,
    critical_pct=10,
    critical_clear_pct=13,
    drain_pct_per_min=6,
    drain_clear_pct_per_min=4,
    drain_window_ms=60_000,
    link_lost_after_ms=30_000,
    max_speed_mps=100,
)
T0 = 1_795_000_000_000


def rec(i: int, battery: float, **over: Any) -> Telemetry:
    fields: dict[str, Any] = {
        "drone_id": "d1",
        "fleet": "f",
        "ts": T0 + i * 1000,
        "received_at": T0 + i * 1000 + 5,
        "lat": 47.0,
        "lon": 8.0,
        "alt_m": 100.0,
        "speed_mps": 10.0,
        "heading_deg": 0.0,
        "battery_pct": battery,
        "status": "airborne",
        "seq": i,
    }
    fields.update(over)
    return Telemetry(**fields)


def run(
    records: list[Telemetry], state: LatestState | None = None
) -> tuple[LatestState | None, list[AlertEvent]]:
    out: list[AlertEvent] = []
    for r in records:
        new, events = apply(state, r, RULES)
        if new is not None:
            state = new
        out.extend(events)
    return state, out


def kinds(events: list[AlertEvent]) -> list[tuple[str, str]]:
    return [(e.type, e.event) for e in events]


def test_low_battery_raises_at_the_threshold_and_clears_only_above_the_clear_level() -> None:
    state, events = run([rec(0, 30), rec(1, 21), rec(2, 20), rec(3, 22), rec(4, 24.9)])
    assert kinds(events) == [("battery_low", "raised")]
    raised = events[0]
    assert raised.raised_at == raised.at == T0 + 2000
    assert raised.alert_id == alert_id("d1", "battery_low", T0 + 2000)
    assert raised.severity == "warning"
    assert state is not None
    assert "battery_low" in state.active_alerts

    state, events = run([rec(5, 25)], state)
    assert kinds(events) == [("battery_low", "cleared")]
    assert events[0].alert_id == raised.alert_id, "a clear names the alert it clears"
    assert events[0].at == T0 + 5000
    assert state is not None
    assert not state.active_alerts


def test_a_battery_oscillating_around_the_threshold_raises_exactly_one_alert() -> None:
    wobble = [rec(i, 20.5 if i % 2 else 19.5) for i in range(40)]
    _, events = run([rec(-1, 21), *wobble])
    assert kinds(events) == [("battery_low", "raised")]


def test_critical_is_its_own_alert_with_its_own_hysteresis() -> None:
    _, events = run([rec(0, 15), rec(1, 9), rec(2, 11), rec(3, 9.5), rec(4, 13), rec(5, 30)])
    assert kinds(events) == [
        ("battery_low", "raised"),
        ("battery_critical", "raised"),
        ("battery_critical", "cleared"),
        ("battery_low", "cleared"),
    ]
    assert [e.severity for e in events][1] == "critical"


def test_a_drone_that_first_reports_below_both_thresholds_raises_both() -> None:
    _, events = run([rec(0, 5)])
    assert kinds(events) == [("battery_low", "raised"), ("battery_critical", "raised")]


def test_rapid_drain_over_the_window_raises_once_and_clears_when_the_rate_falls() -> None:
    # 0.2 %/s = 12 %/min for two minutes, then 0.02 %/s = 1.2 %/min.
    fast = [rec(i, 90 - 0.2 * i) for i in range(120)]
    slow = [rec(120 + i, 66 - 0.02 * i) for i in range(120)]
    _, events = run(fast + slow)
    drain = [e for e in events if e.type == "rapid_drain"]
    assert [e.event for e in drain] == ["raised", "cleared"]
    # Needs half a window of history before it calls anything a rate.
    assert drain[0].raised_at == T0 + 30_000
    assert "%/min" in drain[0].detail


def test_normal_drain_never_raises_rapid_drain() -> None:
    _, events = run([rec(i, 90 - 0.05 * i) for i in range(300)])  # 3 %/min
    assert events == []


def test_drain_rate_is_percent_per_minute_from_the_oldest_checkpoint() -> None:
    assert drain_rate([(0, 50.0), (30_000, 49.0)], 60_000, 47.0) == 3.0
    assert drain_rate([], 60_000, 47.0) is None


def test_link_lost_is_raised_by_the_clock_for_a_flying_drone_and_cleared_by_its_next_record() -> (
    None
):
    state, _ = run([rec(0, 80)])
    assert state is not None
    assert check_link(state, state.received_at + 29_999, RULES) == (None, [])
    lost, events = check_link(state, state.received_at + 30_000, RULES)
    assert kinds(events) == [("link_lost", "raised")]
    assert events[0].raised_at == T0 + 30_000, "event time of the last record + the timeout"
    assert events[0].severity == "critical"
    assert lost is not None
    assert check_link(lost, lost.received_at + 99_000, RULES) == (None, []), "raised once"

    back = rec(45, 80)
    _, events = run([back], lost)
    assert kinds(events) == [("link_lost", "cleared")]
    assert events[0].alert_id == alert_id("d1", "link_lost", T0 + 30_000)
    assert events[0].at == back.ts


def test_a_drone_on_the_ground_never_loses_its_link() -> None:
    state, _ = run([rec(0, 80, status="ground", speed_mps=0.0)])
    assert state is not None
    assert check_link(state, state.received_at + 10**7, RULES) == (None, [])
    assert not in_flight(rec(0, 80, status=None, speed_mps=0.0))
    assert in_flight(rec(0, 80, status=None, speed_mps=5.0))


def test_a_gap_nobody_checked_in_time_still_raises_and_clears_link_lost_with_the_same_id() -> None:
    state, _ = run([rec(0, 80)])
    assert state is not None
    _, by_clock = check_link(state, state.received_at + 31_000, RULES)
    _, events = run([rec(60, 80)], state)  # worker was down: no timer saw the gap
    assert kinds(events) == [("link_lost", "raised"), ("link_lost", "cleared")]
    assert events[0].alert_id == by_clock[0].alert_id


def test_out_of_order_and_replayed_records_change_nothing() -> None:
    state, events = run([rec(0, 30), rec(2, 19)])
    assert kinds(events) == [("battery_low", "raised")]
    late = rec(1, 50)  # older than the state: must not clear the alert nor move the drone back
    new, more = apply(state, late, RULES)
    assert (new, more) == (None, [])
    replay, again = apply(state, rec(2, 19), RULES)
    assert (replay, again) == (None, []), "the same record twice is a no-op"
    same_ts_newer_seq = rec(2, 19, seq=99)
    newer, _ = apply(state, same_ts_newer_seq, RULES)
    assert newer is not None
    assert newer.seq == 99


def test_replaying_from_a_saved_state_reproduces_the_same_alert_ids() -> None:
    records = [rec(i, 40 - i * 0.5) for i in range(60)]
    _, straight = run(records)
    middle, first_half = run(records[:30])
    _, second_half = run(records[20:], middle)  # overlap: records 20..29 are replays
    assert [e.alert_id for e in first_half + second_half] == [e.alert_id for e in straight]


def test_a_position_jump_faster_than_the_max_speed_is_flagged() -> None:
    state, _ = run([rec(0, 80), rec(1, 80, lat=47.0005)])  # ~56 m in 1 s
    assert state is not None
    assert state.implausible_speed_mps is None
    jumped, _ = run([rec(2, 80, lat=47.1)], state)  # ~11 km in 1 s
    assert jumped is not None
    assert jumped.implausible_speed_mps is not None
    assert 10_000 < jumped.implausible_speed_mps < 12_000


def test_published_event_schemas_match_the_code(repo_root: Any) -> None:
    import json

    from dronetrack import events, schemas

    for name in events.json_schemas():
        published = json.loads((repo_root / "docs" / "schemas" / name).read_text())
        assert published == schemas.documents()[name], (
            f"docs/schemas/{name} is stale: run `dronetrack schema --out docs/schemas`"
        )


def test_the_scripted_test_flight_causes_exactly_the_alerts_worked_out_by_hand() -> None:
    """The integration tests' flight (tests/integration/streaming.py) under the default rules:
    the literal expectation they compare the worker's output with."""
    from tests.integration.streaming import flight, flight_alerts

    rules = Rules.from_settings(Settings.from_env({}))
    state: LatestState | None = None
    events: list[AlertEvent] = []
    for r in flight("f", "d1", 200, T0):
        new, more = apply(state, r, rules)
        state = new or state
        events += more
    assert events == flight_alerts("f", "d1", T0)
    assert [(e.type, e.event, e.at - T0) for e in events] == [
        ("rapid_drain", "raised", 30_000),
        ("battery_low", "raised", 80_000),
        ("battery_critical", "raised", 120_000),
        ("rapid_drain", "cleared", 169_000),
        ("battery_critical", "cleared", 173_000),
        ("battery_low", "cleared", 185_000),
    ]


def test_a_replay_from_a_saved_state_names_the_alerts_as_worked_out_by_hand() -> None:
    """40 % falling 0.5 % a second: rapid_drain (30 %/min) once the window spans 30 s, low at
    20 % (40 s); the replayed records 20..29 add nothing."""
    records = [rec(i, 40 - i * 0.5) for i in range(60)]
    middle, first_half = run(records[:30])
    _, second_half = run(records[20:], middle)
    assert first_half == []
    assert [(e.alert_id, e.event, e.detail) for e in second_half] == [
        (f"d1:rapid_drain:{T0 + 30_000}", "raised", "battery draining 30.0%/min"),
        (f"d1:battery_low:{T0 + 40_000}", "raised", "battery 20% at or below 20%"),
    ]
