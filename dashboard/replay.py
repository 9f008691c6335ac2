"""Replay in a compact form: per drone, one column per field, each value scaled to an integer
and sent as the difference from the one before. A flight's numbers then change by a few units
from point to point, so the JSON is a fraction of the per-point objects of ``/api/replay`` and
gzip shrinks it much further. The page asks for a long window a slice at a time (``since`` /
``until``) and starts playing as soon as the first slice is in.

Decoding: ``ts[0]`` is epoch milliseconds and ``ts[i] = ts[i-1] + delta``; ``lat``/``lon`` are
microdegrees, ``alt_m``/``speed_mps``/``battery_pct`` tenths, ``heading_deg`` whole degrees, each
accumulated the same way from 0.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dashboard.handlers import _json, replay_window
from dronetrack.store import TrackPoint

# Field -> scale to an integer: microdegrees, tenths, whole degrees.
SCALES = {
    "lat": 1_000_000,
    "lon": 1_000_000,
    "alt_m": 10,
    "speed_mps": 10,
    "heading_deg": 1,
    "battery_pct": 10,
}


def _deltas(values: list[int]) -> list[int]:
    return [v - p for v, p in zip(values, [0, *values[:-1]], strict=True)]


def columns(points: list[TrackPoint]) -> dict[str, list[int]]:
    """One flight (oldest first) as delta-coded integer columns."""
    out = {"ts": _deltas([p.ts for p in points])}
    for name, scale in SCALES.items():
        out[name] = _deltas([round(getattr(p, name) * scale) for p in points])
    return out


async def replay_columns(request: web.Request) -> web.Response:
    """Every drone's track over ``[since, until)`` in columns, and the alerts raised in it."""
    w = await replay_window(request)
    flights: list[dict[str, Any]] = [
        {"drone_id": drone_id, "truncated": w.truncated(points), **columns(points)}
        for drone_id, points in w.tracks
    ]
    return _json(
        {
            "fleet": w.fleet,
            "since": w.since,
            "until": w.until,
            "scales": SCALES,
            "drones": flights,
            "alerts": w.alerts,
        }
    )
