"""A batch in, the worker's outputs out: dead letters, out-of-order records, one state per drone."""

from __future__ import annotations

from dronetrack import record
from dronetrack.events import LatestState
from streams.alerts import Rules
from streams.process import Raw, check_links, process
from tests.unit.test_alerts import rec


def raw(offset: int, value: bytes) -> Raw:
    return Raw(partition=1, offset=offset, key=b"d1", value=value)


def test_a_batch_parks_poison_keeps_going_and_publishes_each_drone_once() -> None:
    states: dict[int, dict[str, LatestState]] = {}
    batch = [
        raw(0, record.encode(rec(0, 30))),
        raw(1, b"{not json"),
        raw(2, b'{"drone_id": "d1"}'),
        raw(3, record.encode(rec(2, 19))),
        raw(4, record.encode(rec(1, 50))),  # late: stored, changes nothing
    ]
    out = process(batch, lambda p: states.setdefault(p, {}), Rules())
    assert [d.raw.offset for d in out.dead] == [1, 2]
    assert all(d.reason.startswith("undecodable: ") for d in out.dead)
    assert [r.seq for r in out.records] == [0, 2, 1]
    assert out.out_of_order == 1
    assert list(out.latest) == ["f/d1"]
    partition, state = out.latest["f/d1"]
    assert (partition, state.seq) == (1, 2)
    assert states[1]["f/d1"] is state
    assert [(e.type, e.event) for e in out.alerts] == [("battery_low", "raised")]
    assert sum(len(a.alerts) for a in out.partials.by_key.values()) == 1


def test_the_timer_pass_raises_link_lost_once_per_silent_drone() -> None:
    states: dict[int, dict[str, LatestState]] = {}
    process([raw(0, record.encode(rec(0, 80)))], lambda p: states.setdefault(p, {}), Rules())
    later = states[1]["f/d1"].received_at + 31_000
    out = check_links(states, later, Rules())
    assert [(e.type, e.event) for e in out.alerts] == [("link_lost", "raised")]
    assert "link_lost" in out.latest["f/d1"][1].active_alerts
    assert check_links(states, later + 1_000, Rules()).alerts == []


def test_a_drone_is_known_by_its_fleet_and_id() -> None:
    """Another fleet's drone of the same name, a little ahead in time and far away, neither
    makes this fleet's records late nor its moves implausible."""
    states: dict[int, dict[str, LatestState]] = {}
    batch = []
    for i in range(3):
        batch.append(raw(2 * i, record.encode(rec(i, 80))))
        other = rec(i, 90, fleet="g", ts=rec(i, 90).ts + 500, lat=57.0)
        batch.append(raw(2 * i + 1, record.encode(other)))
    out = process(batch, lambda p: states.setdefault(p, {}), Rules())
    assert out.out_of_order == 0
    assert out.implausible == 0
    assert {k: (s.fleet, s.seq, s.battery_pct) for k, (_, s) in out.latest.items()} == {
        "f/d1": ("f", 2, 80),
        "g/d1": ("g", 2, 90),
    }


def test_history_is_stored_but_never_live() -> None:
    """Records ingest took as history (an imported flight log) go to the track, and neither
    become the drone's live state nor raise an alert: a battery at 5 % in last week's log is
    not an emergency now, and its last report must not start the link-lost clock."""
    states: dict[int, dict[str, LatestState]] = {}
    history = [("dronetrack-backfill", b"1")]
    batch = [
        Raw(partition=1, offset=i, key=b"d1", value=record.encode(rec(i, 5)), headers=history)
        for i in range(3)
    ]
    out = process(batch, lambda p: states.setdefault(p, {}), Rules())
    assert [r.seq for r in out.records] == [0, 1, 2]
    assert out.alerts == []
    assert out.latest == {}
    assert "f/d1" not in states.get(1, {})
    assert check_links(states, rec(2, 5).received_at + 3_600_000, Rules()).alerts == []
