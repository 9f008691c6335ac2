"""The per-drone alert state machine: pure functions of (previous state, record, rules).

Nothing here does I/O, so every rule is unit-tested directly. Determinism is the point: a record
replayed after a crash or a rebalance, applied to the same state, yields the same alert ids
(``alert_id`` is built from the raise's event time), so the store's upserts and the consumers'
deduplication absorb the repeat.

Rules, per drone:
- ``battery_low`` / ``battery_critical``: raised when the battery is at or below the threshold,
  cleared only when it is back at or above the clear level (hysteresis: a battery hovering at the
  threshold raises once).
- ``rapid_drain``: the drain rate over a sliding window (checkpoints every window/6, measured from
  the oldest one in the window once it spans half the window) at or above a rate; cleared at or
  below a lower rate.
- ``link_lost``: a drone that was flying has sent nothing (by server ``received_at``) for a
  configured time; raised by the worker's clock (``check_link``) or, if no check ran in time,
  when the next record shows the gap; cleared by the next record either way.
- A record older than the state (event time, then ``seq``) changes nothing: out-of-order and
  replayed records never move a drone backwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from dronetrack.events import ActiveAlert, AlertEvent, AlertTransition, LatestState
from dronetrack.record import Telemetry, is_newer
from dronetrack.settings import Settings
from dronetrack.store import AlertType, Severity, alert_id
from streams.plausibility import implausible_speed

SEVERITY: dict[AlertType, Severity] = {
    "battery_low": "warning",
    "battery_critical": "critical",
    "rapid_drain": "warning",
    "link_lost": "critical",
}
CHECKPOINTS_PER_WINDOW = 6


@dataclass(frozen=True, slots=True)
class Rules:
    low_pct: float = 20.0
    low_clear_pct: float = 25.0
    critical_pct: float = 10.0
    critical_clear_pct: float = 13.0
    drain_pct_per_min: float = 6.0
    drain_clear_pct_per_min: float = 4.0
    drain_window_ms: int = 60_000
    link_lost_after_ms: int = 30_000
    max_speed_mps: float = 150.0

    @classmethod
    def from_settings(cls, s: Settings) -> Rules:
        return cls(
            low_pct=s.streams_battery_low_pct,
            low_clear_pct=s.streams_battery_low_clear_pct,
            critical_pct=s.streams_battery_critical_pct,
            critical_clear_pct=s.streams_battery_critical_clear_pct,
            drain_pct_per_min=s.streams_rapid_drain_pct_per_min,
            drain_clear_pct_per_min=s.streams_rapid_drain_clear_pct_per_min,
            drain_window_ms=round(s.streams_rapid_drain_window_s * 1000),
            link_lost_after_ms=round(s.streams_link_lost_after_s * 1000),
            max_speed_mps=s.streams_max_speed_mps,
        )


def in_flight(r: Telemetry) -> bool:
    """Flying by its declared status; without one, by moving."""
    if r.status in ("airborne", "emergency"):
        return True
    return r.status in (None, "undeclared") and r.speed_mps >= 1.0


class _Transitions:
    """Collects the raises and clears of one step against a copy of the active alerts."""

    def __init__(self, fleet: str, drone_id: str, active: dict[AlertType, ActiveAlert]) -> None:
        self.fleet, self.drone_id = fleet, drone_id
        self.active = dict(active)
        self.events: list[AlertEvent] = []

    def _event(self, kind: AlertTransition, type_: AlertType, raised_at: int, at: int) -> None:
        self.events.append(
            AlertEvent(
                event=kind,
                alert_id=alert_id(self.drone_id, type_, raised_at),
                fleet=self.fleet,
                drone_id=self.drone_id,
                type=type_,
                severity=SEVERITY[type_],
                raised_at=raised_at,
                at=at,
                detail=self.active[type_].detail,
            )
        )

    def raise_(self, type_: AlertType, at: int, detail: str) -> None:
        self.active[type_] = ActiveAlert(raised_at=at, detail=detail)
        self._event("raised", type_, at, at)

    def clear(self, type_: AlertType, at: int) -> None:
        raised_at = self.active[type_].raised_at
        self._event("cleared", type_, raised_at, max(at, raised_at))
        del self.active[type_]


def apply(
    prev: LatestState | None, rec: Telemetry, rules: Rules
) -> tuple[LatestState | None, list[AlertEvent]]:
    """Apply one record. Returns the new state (None when ``rec`` is not newer than ``prev``:
    nothing changes) and the alert transitions it caused, in order."""
    if prev is not None and not is_newer(rec, prev):
        return None, []
    t = _Transitions(rec.fleet, rec.drone_id, prev.active_alerts if prev is not None else {})
    jump = None
    checkpoints: list[tuple[int, float]] = []
    if prev is not None:
        _link(t, prev, rec, rules)
        jump = implausible_speed(prev, rec, rules.max_speed_mps)
        horizon = rec.ts - rules.drain_window_ms
        checkpoints = [c for c in prev.drain_checkpoints if c[0] >= horizon]
    _battery(t, rec, rules)
    _drain(t, checkpoints, rec, rules)
    if not checkpoints or rec.ts - checkpoints[-1][0] >= (
        rules.drain_window_ms // CHECKPOINTS_PER_WINDOW
    ):
        checkpoints.append((rec.ts, rec.battery_pct))
    state = LatestState(
        **msgspec.structs.asdict(rec),
        active_alerts=t.active,
        implausible_speed_mps=None if jump is None else round(jump, 1),
        drain_checkpoints=checkpoints,
    )
    return state, t.events


def _link(t: _Transitions, prev: LatestState, rec: Telemetry, rules: Rules) -> None:
    if "link_lost" in t.active:
        t.clear("link_lost", rec.ts)
    elif in_flight(prev) and rec.received_at - prev.received_at >= rules.link_lost_after_ms:
        # Nobody checked in time (worker down, or replaying): the gap still was a lost link.
        t.raise_("link_lost", prev.ts + rules.link_lost_after_ms, _link_detail(rules))
        t.clear("link_lost", rec.ts)


def _link_detail(rules: Rules) -> str:
    return f"no record for {rules.link_lost_after_ms / 1000:g} s while flying"


def _battery(t: _Transitions, rec: Telemetry, rules: Rules) -> None:
    pct = rec.battery_pct
    levels: tuple[tuple[AlertType, float, float], ...] = (
        ("battery_low", rules.low_pct, rules.low_clear_pct),
        ("battery_critical", rules.critical_pct, rules.critical_clear_pct),
    )
    for type_, threshold, clear_at in levels:
        if type_ in t.active:
            if pct >= clear_at:
                t.clear(type_, rec.ts)
        elif pct <= threshold:
            t.raise_(type_, rec.ts, f"battery {pct:g}% at or below {threshold:g}%")


def drain_rate(checkpoints: list[tuple[int, float]], ts: int, pct: float) -> float | None:
    """Percent lost per minute since the oldest checkpoint (None without one)."""
    if not checkpoints or ts <= checkpoints[0][0]:
        return None
    then, then_pct = checkpoints[0]
    return (then_pct - pct) / ((ts - then) / 60_000)


def _drain(
    t: _Transitions, checkpoints: list[tuple[int, float]], rec: Telemetry, rules: Rules
) -> None:
    if not checkpoints or rec.ts - checkpoints[0][0] < rules.drain_window_ms // 2:
        return  # too short a span to call it a rate
    rate = drain_rate(checkpoints, rec.ts, rec.battery_pct)
    if rate is None:
        return
    if "rapid_drain" in t.active:
        if rate <= rules.drain_clear_pct_per_min:
            t.clear("rapid_drain", rec.ts)
    elif rate >= rules.drain_pct_per_min:
        t.raise_("rapid_drain", rec.ts, f"battery draining {rate:.1f}%/min")


def check_link(
    state: LatestState, now_ms: int, rules: Rules
) -> tuple[LatestState | None, list[AlertEvent]]:
    """The clock's side of ``link_lost``: raise it for a flying drone silent for too long.
    ``raised_at`` is the last record's event time plus the timeout, not the clock, so whichever
    path notices the gap (this or ``apply``) names the same alert."""
    if "link_lost" in state.active_alerts or not in_flight(state):
        return None, []
    if now_ms - state.received_at < rules.link_lost_after_ms:
        return None, []
    t = _Transitions(state.fleet, state.drone_id, state.active_alerts)
    t.raise_("link_lost", state.ts + rules.link_lost_after_ms, _link_detail(rules))
    return msgspec.structs.replace(state, active_alerts=t.active), t.events
