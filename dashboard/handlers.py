"""HTTP handlers of the dashboard's JSON API and page. Every API handler reads through
``Reads`` (the cache) and names the fleet it got from ``auth.fleet_of``: a fleet or drone the
user may not see is answered exactly like one that does not exist (404)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import msgspec
from aiohttp import web

from dashboard import exports
from dashboard.auth import current, fleet_of, principal
from dashboard.keys import HUB, READS, SETTINGS
from dashboard.openapi import document
from dashboard.reads import RECENT_ALERTS_LIMIT, now_ms
from dashboard.tiles import map_config
from dronetrack.record import MAX_EPOCH_MS
from dronetrack.store import Alert, TrackPoint
from dronetrack.web import Problem

_INDEX = (Path(__file__).parent / "static" / "index.html").read_text()
_encoder = msgspec.json.Encoder()

MAX_TRACK_LIMIT = 10_000
MAX_ALERTS_LIMIT = 1_000
MAX_REPLAY_MS = 6 * 3600 * 1000
REPLAY_POINTS_PER_DRONE = 5_000


# Scripts only from this origin, tiles from anywhere, never framed (an Acknowledge button must
# not be clickable through another site's overlay).
_PAGE_SECURITY = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: https: http:; "
    "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class BadQuery(Problem):
    """A query parameter is malformed or out of bounds; the answer names it (``parameter``)."""

    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(400, "Bad query", f"{parameter} {detail}", parameter=parameter)


def _json(payload: object) -> web.Response:
    return web.Response(body=_encoder.encode(payload), content_type="application/json")


# ASCII digits only (str.isdigit also takes "²" and other scripts' digits, which int() refuses),
# and few enough that int() never meets its 4,300-digit limit.
_EPOCH_MS = re.compile(r"-?[0-9]{1,16}")
_COUNT = re.compile(r"[0-9]{1,6}")
# RFC 3339's date-time, which is what the document's format: date-time promises.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The times a query can name: year 1 to the end of year 9999 (a record's ts's upper bound).
MIN_TIME_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
MAX_TIME_MS = MAX_EPOCH_MS


def _rfc3339_ms(raw: str) -> int | None:
    """Epoch ms of an RFC 3339 date-time (a leap second as the next second's start; a zone
    offset that moves it outside years 1..9999 clamped), or None if it is not one."""
    m = _RFC3339.fullmatch(raw)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction = int((m[7] or ".0")[1:][:3].ljust(3, "0"))
    try:
        local = datetime(year, month, day, hour, minute, min(second, 59), tzinfo=UTC)
    except ValueError:
        return None
    if second > 60:
        return None
    ms = (local - _EPOCH) // timedelta(milliseconds=1) + fraction + (1000 if second == 60 else 0)
    if m[8]:
        offset = (int(m[9]) * 60 + int(m[10])) * 60_000
        ms -= offset if m[8] == "+" else -offset
    return min(max(ms, MIN_TIME_MS), MAX_TIME_MS)


def _time(request: web.Request, name: str) -> int | None:
    """A time parameter: epoch milliseconds or an RFC 3339 date-time, within
    ``[MIN_TIME_MS, MAX_TIME_MS]``."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if _EPOCH_MS.fullmatch(raw):
        value = int(raw)
        if not MIN_TIME_MS <= value <= MAX_TIME_MS:
            raise BadQuery(name, f"must be from {MIN_TIME_MS} to {MAX_TIME_MS} (years 1 to 9999)")
        return value
    parsed = _rfc3339_ms(raw)
    if parsed is None:
        raise BadQuery(
            name, f"must be epoch milliseconds or an RFC 3339 date-time with a zone: {raw[:40]!r}"
        )
    return parsed


def _window(request: web.Request) -> tuple[int, int]:
    """Replay's required window ``[since, until)``, at most ``MAX_REPLAY_MS`` long."""
    since, until = _time(request, "since"), _time(request, "until")
    if since is None or until is None:
        missing = "since" if since is None else "until"
        raise BadQuery(missing, "is required: replay shows a window [since, until)")
    if not 0 < until - since <= MAX_REPLAY_MS:
        raise BadQuery(
            "until", f"must be after since and at most {MAX_REPLAY_MS // 3_600_000} h after it"
        )
    return since, until


def _limit(request: web.Request, default: int, maximum: int) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not _COUNT.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise BadQuery("limit", f"must be an integer from 1 to {maximum}")
    return int(raw)


def _fleet(request: web.Request) -> str:
    fleet = fleet_of(request)
    if fleet is None:
        raise Problem(404, "Unknown fleet", "no such fleet among yours")
    return fleet


async def _known_drone(request: web.Request, fleet: str) -> str:
    """The path's drone id, if that drone is in ``fleet`` (another fleet's drone is unknown)."""
    drone_id = request.match_info["drone_id"]
    if await request.app[READS].drone(fleet, drone_id) is None:
        raise Problem(404, "Unknown drone", f"no drone {drone_id!r} in this fleet")
    return drone_id


async def index(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    config = json.dumps(
        {
            "tileUrl": settings.dashboard_tile_url,
            "staleAfterMs": int(settings.dashboard_stale_after_s * 1000),
            "lostAfterMs": int(settings.dashboard_lost_after_s * 1000),
            **map_config(request.app),  # base layer and battery colours
        }
    ).replace("</", "<\\/")
    return web.Response(
        text=_INDEX.replace("{{CONFIG}}", config),
        content_type="text/html",
        headers={"Cache-Control": "no-store", **_PAGE_SECURITY},
    )


async def openapi(request: web.Request) -> web.Response:
    return _json(document())


async def list_drones(request: web.Request) -> web.Response:
    fleet = _fleet(request)
    settings = request.app[SETTINGS]
    head = _encoder.encode(
        {
            "fleet": fleet,
            "now": now_ms(),
            "stale_after_ms": int(settings.dashboard_stale_after_s * 1000),
            "lost_after_ms": int(settings.dashboard_lost_after_s * 1000),
        }
    )
    # The cached array is spliced in as it is: no decode and re-encode on the busiest path.
    drones = await request.app[READS].latest_json(fleet)
    return web.Response(
        body=head[:-1] + b',"drones":' + drones + b"}", content_type="application/json"
    )


async def get_drone(request: web.Request) -> web.Response:
    fleet = _fleet(request)
    drone = await request.app[READS].drone(fleet, await _known_drone(request, fleet))
    return _json(drone)


async def get_track(request: web.Request) -> web.Response:
    """Newest first; ``next_before`` pages further back (ts is unique per drone)."""
    fleet = _fleet(request)
    limit = _limit(request, 1_000, MAX_TRACK_LIMIT)
    since, before = _time(request, "since"), _time(request, "before")
    drone_id = await _known_drone(request, fleet)
    points = await request.app[READS].track(
        fleet, drone_id, limit=limit, before_ms=before, since_ms=since
    )
    next_before = points[-1].ts if len(points) == limit else None
    return _json({"drone_id": drone_id, "points": points, "next_before": next_before})


async def get_drone_alerts(request: web.Request) -> web.Response:
    fleet = _fleet(request)
    limit = _limit(request, 50, MAX_ALERTS_LIMIT)
    drone_id = await _known_drone(request, fleet)
    alerts = await request.app[READS].drone_alerts(fleet, drone_id, limit)
    return _json({"drone_id": drone_id, "alerts": alerts})


async def list_alerts(request: web.Request) -> web.Response:
    """Alerts raised in ``[since, until)`` (default: the last day), newest first.

    ``next_until`` pages further back; alerts raised in the very millisecond of a page
    boundary may show on both pages, so a client keys them by ``alert_id``.
    """
    fleet = _fleet(request)
    limit = _limit(request, RECENT_ALERTS_LIMIT, MAX_ALERTS_LIMIT)
    since, until = _time(request, "since"), _time(request, "until")
    if since is not None and until is not None and since >= until:
        raise BadQuery("since", "must be before until")
    state = request.query.get("state")
    if state is not None and state not in ("active", "acknowledged", "cleared"):
        raise BadQuery("state", "must be active, acknowledged or cleared")
    alerts = await request.app[READS].alerts(fleet, since_ms=since, until_ms=until, limit=limit)
    next_until = alerts[-1].raised_at + 1 if len(alerts) == limit else None
    if state is not None:
        alerts = [a for a in alerts if a.state == state]
    return _json({"fleet": fleet, "alerts": alerts, "next_until": next_until})


async def acknowledge(request: web.Request) -> web.Response:
    fleet = _fleet(request)
    alert_id = request.match_info["alert_id"]
    reads = request.app[READS]
    alert = await reads.store.acknowledge_alert(fleet, alert_id, current(request).name, now_ms())
    if alert is None:
        raise Problem(404, "Unknown alert", f"no alert {alert_id!r} in this fleet")
    await reads.forget_recent_alerts(fleet)
    return _json(alert)


async def fleet_stats(request: web.Request) -> web.Response:
    """The fleet right now (from latest state) and per-minute figures over a window."""
    fleet = _fleet(request)
    settings = request.app[SETTINGS]
    now = now_ms()
    until = _time(request, "until")
    until = now if until is None else until
    since = _time(request, "since")
    since = until - 3600 * 1000 if since is None else since
    if since >= until:
        raise BadQuery("since", "must be before until")
    reads = request.app[READS]
    drones, alerts, minutes = await asyncio.gather(
        reads.latest(fleet),
        reads.recent_alerts(fleet),
        reads.fleet_stats(fleet, since, until),
    )
    stale_ms = settings.dashboard_stale_after_s * 1000
    lost_ms = settings.dashboard_lost_after_s * 1000
    reporting = [d for d in drones if now - d.ts < stale_ms]
    batteries = [d.battery_pct for d in drones if now - d.ts < lost_ms]
    current_stats = {
        "drones": len(drones),
        "reporting": len(reporting),
        "stale": sum(1 for d in drones if stale_ms <= now - d.ts < lost_ms),
        "lost": sum(1 for d in drones if now - d.ts >= lost_ms),
        "in_flight": sum(1 for d in reporting if d.status == "airborne" or d.speed_mps > 0.5),
        "battery_mean": round(sum(batteries) / len(batteries), 1) if batteries else None,
        "battery_min": min(batteries) if batteries else None,
        "alerts_active": sum(1 for a in alerts if a.state == "active"),
    }
    return _json({"fleet": fleet, "now": now, "current": current_stats, "minutes": minutes})


class Window(NamedTuple):
    """A replay window and what happened in it: each drone's track (oldest first, only drones
    that reported in it) and the alerts raised in it (oldest first)."""

    fleet: str
    since: int
    until: int
    tracks: list[tuple[str, list[TrackPoint]]]
    alerts: list[Alert]

    def truncated(self, points: list[TrackPoint]) -> bool:
        return len(points) == REPLAY_POINTS_PER_DRONE


async def replay_window(request: web.Request) -> Window:
    """What replay shows, in whichever form it is sent (``replay``, ``replay.replay_columns``)."""
    fleet = _fleet(request)
    since, until = _window(request)
    reads = request.app[READS]
    # A drone whose latest report is older than the window did not fly in it.
    active = [d.drone_id for d in await reads.latest(fleet) if d.ts >= since]
    tracks = await asyncio.gather(
        *(
            reads.track(
                fleet, drone_id, limit=REPLAY_POINTS_PER_DRONE, before_ms=until, since_ms=since
            )
            for drone_id in active
        )
    )
    alerts = await reads.alerts(fleet, since_ms=since, until_ms=until, limit=MAX_ALERTS_LIMIT)
    return Window(
        fleet,
        since,
        until,
        [
            (drone_id, points[::-1])
            for drone_id, points in zip(active, tracks, strict=True)
            if points
        ],
        alerts[::-1],
    )


async def replay(request: web.Request) -> web.Response:
    """Every drone's track over ``[since, until)`` oldest first, and the alerts raised in it."""
    w = await replay_window(request)
    flights = [
        {"drone_id": drone_id, "points": points, "truncated": w.truncated(points)}
        for drone_id, points in w.tracks
    ]
    return _json(
        {
            "fleet": w.fleet,
            "since": w.since,
            "until": w.until,
            "drones": flights,
            "alerts": w.alerts,
        }
    )


async def events(request: web.Request) -> web.StreamResponse:
    fleet = _fleet(request)

    async def allowed() -> bool:
        """Still signed in (not signed out, disabled or expired) and still given this fleet."""
        who = await principal(request)
        return who is not None and fleet in who.fleets

    return await request.app[HUB].stream(request, fleet, allowed)


# -- exports ------------------------------------------------------------------------------


async def export_track(request: web.Request) -> web.StreamResponse:
    """One drone's track over ``[since, until)`` (until: default now) as a file, oldest point
    first, streamed; a range past the export limit is refused before anything is sent."""
    fleet = _fleet(request)
    name = request.match_info["format"]
    fmt = exports.FORMATS.get(name)
    if fmt is None:
        raise Problem(
            404, "Unknown format", f"no export as {name[:20]!r}: gpx, kml, geojson or csv"
        )
    since, until = _time(request, "since"), _time(request, "until")
    if since is None:
        raise BadQuery("since", "is required: an export covers [since, until)")
    until = now_ms() if until is None else until
    if since >= until:
        raise BadQuery("since", "must be before until")
    drone_id = await _known_drone(request, fleet)
    span = exports.Span(fleet, drone_id, since, until)
    reads = request.app[READS]
    cursors = await exports.plan(reads, span, request.app[SETTINGS].dashboard_export_max_points)
    response = web.StreamResponse(headers=exports.headers(span, fmt))
    await response.prepare(request)
    async for chunk in exports.render(reads, span, fmt, cursors):
        await response.write(chunk)
    await response.write_eof()
    return response
