"""Flight segmentation: pure functions of (previous state, new state, alert events, rules).

Like the alert rules (streams/alerts.py) nothing here does I/O, and the same determinism holds:
a flight's id is its drone and its take-off's event time (``store.flight_id``), the flight in
progress travels in the drone's state on ``drone.latest.v1``, and a record older than the state
changes nothing, so a replay, a crash or a rebalance yields the same flights.

Rules, per drone:
- Flying or on the ground is read from the declared ``status`` (``airborne`` and ``emergency``
  fly; ``ground`` and ``system_failure`` do not). Without one (or ``undeclared``) a record flies
  when its speed is at or above the take-off speed or its altitude is at least the take-off climb
  above where the drone last stood on the ground; GPS jitter on the ground stays below both.
- A flight starts at the first flying record and ends at the next record on the ground (which
  belongs to the flight: it is where the drone landed).
- It also ends, at its last record, when the drone sent nothing for the link-lost time: seen when
  the next record comes (``step``) or by the worker's clock (``check_link``), with the same result.
- Distance sums the great-circle legs between consecutive plausible positions (a jump implying
  more than the maximum speed is left out, as the alert rules flag it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec

from dronetrack.events import AlertEvent, FlightProgress, LatestState
from dronetrack.record import Telemetry
from dronetrack.settings import Settings
from dronetrack.store import Flight, FlightEnd, flight_id
from streams.plausibility import EARTH_RADIUS_M

_NONE: list[str] = []  # no alerts raised: shared, never appended to (lists are concatenated)
# Weight of a new ground record in the ground altitude (an exponential moving average).
GROUND_SMOOTHING = 0.2


@dataclass(frozen=True, slots=True)
class FlightRules:
    takeoff_speed_mps: float = 3.0
    takeoff_climb_m: float = 5.0
    link_lost_after_ms: int = 120_000
    max_speed_mps: float = 150.0

    @classmethod
    def from_settings(cls, s: Settings) -> FlightRules:
        return cls(
            takeoff_speed_mps=s.streams_flight_takeoff_speed_mps,
            takeoff_climb_m=s.streams_flight_takeoff_climb_m,
            link_lost_after_ms=round(s.streams_flight_link_lost_after_s * 1000),
            max_speed_mps=s.streams_max_speed_mps,
        )


def flying(rec: Telemetry, ground_alt_m: float | None, rules: FlightRules) -> bool:
    """Whether a record is in the air: its status when declared, else speed or climb."""
    if rec.status in ("airborne", "emergency"):
        return True
    if rec.status in ("ground", "system_failure"):
        return False
    if rec.speed_mps >= rules.takeoff_speed_mps:
        return True
    return ground_alt_m is not None and rec.alt_m - ground_alt_m >= rules.takeoff_climb_m


def step(
    prev: LatestState | None, state: LatestState, events: list[AlertEvent], rules: FlightRules
) -> tuple[LatestState, tuple[Flight, ...]]:
    """Advance the flight of ``state`` (the drone's new state, just made by the alert rules
    from ``prev``; ``events`` are the alert transitions of that record). Returns ``state`` with
    its flight and ground altitude set (in place), and the flights this record finished (at most
    two: one cut by a lost link, and none or one landing)."""
    finished: tuple[Flight, ...] = ()  # the empty tuple is shared: no allocation per record
    progress = prev.flight if prev is not None else None
    ground_alt = prev.ground_alt_m if prev is not None else None
    raised = [e.alert_id for e in events if e.event == "raised"] if events else _NONE
    if prev is not None and progress is not None and state.ts - prev.ts >= rules.link_lost_after_ms:
        # Alerts raised in the gap (the rules' own link_lost) belong to the flight that ended.
        gap = [e.alert_id for e in events if e.event == "raised" and e.raised_at < state.ts]
        if gap:
            progress = msgspec.structs.replace(progress, alert_ids=progress.alert_ids + gap)
        finished = (_finish(prev, progress, "link_lost"),)
        progress = None
        raised = [a for a in raised if a not in gap]
    if flying(state, ground_alt, rules):
        if progress is None:
            progress = FlightProgress(
                start=state.ts,
                battery_start_pct=state.battery_pct,
                max_alt_m=state.alt_m,
                max_speed_mps=state.speed_mps,
                fix_ts=state.ts,
                fix_lat=state.lat,
                fix_lon=state.lon,
                alert_ids=list(raised),
            )
        else:
            progress = _advance(progress, state, raised, rules)
    else:
        # Smoothed while standing, so GPS altitude jitter does not move the reference with it;
        # reset where a flight ends (it may land higher or lower than it took off).
        if ground_alt is None or progress is not None:
            ground_alt = state.alt_m
        else:
            ground_alt += (state.alt_m - ground_alt) * GROUND_SMOOTHING
        if progress is not None:
            landed = _finish(state, _advance(progress, state, raised, rules), "landed")
            finished = (*finished, landed)
            progress = None
    # ``state`` is the alert rules' new struct, not yet shared: completed in place (a copy
    # would cost a tenth of this function).
    state.flight, state.ground_alt_m = progress, ground_alt
    return state, finished


def _advance(
    p: FlightProgress, rec: Telemetry, raised: list[str], rules: FlightRules
) -> FlightProgress:
    leg = leg_m(p.fix_lat, p.fix_lon, rec.lat, rec.lon)
    if leg / (max(rec.ts - p.fix_ts, 1) / 1000) <= rules.max_speed_mps:
        distance, fix_ts, fix_lat, fix_lon = p.distance_m + leg, rec.ts, rec.lat, rec.lon
    else:  # an implausible jump: left out, the next leg measured from the last good fix
        distance, fix_ts, fix_lat, fix_lon = p.distance_m, p.fix_ts, p.fix_lat, p.fix_lon
    return FlightProgress(
        start=p.start,
        battery_start_pct=p.battery_start_pct,
        # Conditionals, not max(): this runs for every record of every flying drone.
        max_alt_m=rec.alt_m if rec.alt_m > p.max_alt_m else p.max_alt_m,
        max_speed_mps=rec.speed_mps if rec.speed_mps > p.max_speed_mps else p.max_speed_mps,
        distance_m=distance,
        points=p.points + 1,
        fix_ts=fix_ts,
        fix_lat=fix_lat,
        fix_lon=fix_lon,
        alert_ids=p.alert_ids + raised if raised else p.alert_ids,
    )


def _finish(last: Telemetry, p: FlightProgress, how: FlightEnd) -> Flight:
    """The flight summary, ``last`` being its last record."""
    duration = last.ts - p.start
    used = p.battery_start_pct - last.battery_pct
    return Flight(
        fleet=last.fleet,
        drone_id=last.drone_id,
        flight_id=flight_id(last.fleet, last.drone_id, p.start),
        start=p.start,
        end=last.ts,
        duration_ms=duration,
        ended_by=how,
        distance_m=round(p.distance_m, 1),
        max_alt_m=p.max_alt_m,
        max_speed_mps=p.max_speed_mps,
        battery_start_pct=p.battery_start_pct,
        battery_end_pct=last.battery_pct,
        battery_used_pct_per_min=round(used / (duration / 60_000), 2) if duration > 0 else None,
        points=p.points,
        alert_ids=list(p.alert_ids),
    )


def leg_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two nearby fixes, by the equirectangular approximation:
    within 0.01 % of the haversine (``plausibility.distance_m``) for the legs between a flying
    drone's records (under 20 km, away from the poles), at a third of its cost per record."""
    dlon = (lon2 - lon1 + 180.0) % 360.0 - 180.0  # across the antimeridian too
    x = math.radians(dlon) * math.cos(math.radians((lat1 + lat2) / 2))
    return EARTH_RADIUS_M * math.hypot(x, math.radians(lat2 - lat1))


def add_alerts(state: LatestState, events: list[AlertEvent]) -> LatestState:
    """Alerts raised outside a record (the clock's ``link_lost``) join the flight in progress."""
    raised = [e.alert_id for e in events if e.event == "raised"]
    if state.flight is None or not raised:
        return state
    flight = msgspec.structs.replace(state.flight, alert_ids=state.flight.alert_ids + raised)
    return msgspec.structs.replace(state, flight=flight)


def check_link(
    state: LatestState, now_ms: int, rules: FlightRules
) -> tuple[LatestState, Flight] | None:
    """The clock's side of a lost link: a drone in flight whose last record arrived (server
    ``received_at``) longer ago than the link-lost time. The flight ends at that last record,
    exactly as ``step`` would end it when the next record shows the gap."""
    if state.flight is None or now_ms - state.received_at < rules.link_lost_after_ms:
        return None
    done = _finish(state, state.flight, "link_lost")
    return msgspec.structs.replace(state, flight=None), done
