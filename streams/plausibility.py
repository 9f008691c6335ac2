"""Position plausibility, as ADS-B decoders do it: a jump from the previous position that would
need more than a maximum ground speed is flagged (not dropped: the record is still stored)."""

from __future__ import annotations

import math

from dronetrack.record import Telemetry

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine), good to ~0.5%: plenty for a speed check."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def implied_speed_mps(prev: Telemetry, rec: Telemetry) -> float:
    """Ground speed needed to get from ``prev`` to ``rec`` (a jump in no time counts as 1 ms,
    so the figure stays finite and JSON-encodable)."""
    return distance_m(prev.lat, prev.lon, rec.lat, rec.lon) / (max(rec.ts - prev.ts, 1) / 1000)


def implausible_speed(prev: Telemetry, rec: Telemetry, max_mps: float) -> float | None:
    """The implied speed when it exceeds ``max_mps``, else None."""
    speed = implied_speed_mps(prev, rec)
    return speed if speed > max_mps else None
