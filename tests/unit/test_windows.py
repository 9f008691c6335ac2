"""Per-minute fleet statistics: tumbling windows of mergeable, replay-safe partials."""

from __future__ import annotations

from typing import Any

from dronetrack.record import Telemetry
from streams.windows import MINUTE_MS, MinuteAgg, Partials, decode, encode, figures, merge

T0 = 1_795_000_020_000  # a minute boundary


def rec(drone: str, second: float, battery: float, **over: Any) -> Telemetry:
    fields: dict[str, Any] = {
        "drone_id": drone,
        "fleet": "f",
        "ts": T0 + int(second * 1000),
        "received_at": T0,
        "lat": 47.0,
        "lon": 8.0,
        "alt_m": 100.0,
        "speed_mps": 10.0,
        "heading_deg": 0.0,
        "battery_pct": battery,
        "status": "airborne",
    }
    fields.update(over)
    return Telemetry(**fields)


def partials(records: list[Telemetry]) -> Partials:
    p = Partials()
    for r in records:
        p.add_record(r)
    return p


def test_a_minute_counts_drones_flying_the_mean_of_last_batteries_and_the_minimum() -> None:
    p = partials(
        [
            rec("a", 1, 80),
            rec("a", 50, 70),
            rec("b", 10, 40, status="ground", speed_mps=0.0),
            rec("c", 59.999, 60),
            rec("c", 61, 10),  # next minute
        ]
    )
    p.add_alerts("f", [("a:battery_low:1", T0 + 5_000), ("c:link_lost:2", T0 + MINUTE_MS + 1)])
    assert sorted(p.by_key) == [("f", T0), ("f", T0 + MINUTE_MS)]
    first = figures("f", T0, p.by_key[("f", T0)])
    assert first.drones_active == 3
    assert first.drones_in_flight == 2
    assert first.battery_mean == round((70 + 40 + 60) / 3, 3)
    assert first.battery_min == 40
    assert first.alerts_raised == 1
    second = figures("f", T0 + MINUTE_MS, p.by_key[("f", T0 + MINUTE_MS)])
    assert (second.drones_active, second.battery_min, second.alerts_raised) == (1, 10, 1)


def test_merging_partials_from_two_workers_equals_one_worker_seeing_everything() -> None:
    records = [rec(d, s, 100 - s / 2) for d in "abcd" for s in range(0, 60, 7)]
    whole = partials(records).by_key[("f", T0)]
    left = partials(records[::2]).by_key[("f", T0)]
    right = partials(records[1::2]).by_key[("f", T0)]
    assert figures("f", T0, merge(left, right)) == figures("f", T0, whole)
    assert figures("f", T0, merge(right, left)) == figures("f", T0, whole)


def test_a_replayed_partial_changes_nothing() -> None:
    p = partials([rec("a", 1, 80), rec("b", 2, 50)])
    p.add_alerts("f", [("x", T0)])
    agg = p.by_key[("f", T0)]
    twice = merge(merge(agg, agg), decode(encode(agg)))
    assert figures("f", T0, twice) == figures("f", T0, agg)


def test_an_empty_minute_has_no_figures_to_divide_by_zero() -> None:
    assert figures("f", T0, MinuteAgg()).drones_active == 0
