"""HTTP handlers of the dashboard."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
from aiohttp import web

from dashboard.keys import SETTINGS, STORE
from dronetrack.web import problem

_INDEX = (Path(__file__).parent / "static" / "index.html").read_text()
_encoder = msgspec.json.Encoder()


def _json(payload: object) -> web.Response:
    return web.Response(body=_encoder.encode(payload), content_type="application/json")


def _fleet(request: web.Request) -> str:
    return request.app[SETTINGS].default_fleet


async def index(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    config = json.dumps(
        {"tileUrl": settings.dashboard_tile_url, "refreshMs": settings.dashboard_refresh_ms}
    ).replace("</", "<\\/")
    return web.Response(text=_INDEX.replace("{{CONFIG}}", config), content_type="text/html")


async def list_drones(request: web.Request) -> web.Response:
    drones = await request.app[STORE].latest(_fleet(request))
    return _json({"drones": drones})


async def get_drone(request: web.Request) -> web.Response:
    drone_id = request.match_info["drone_id"]
    drone = await request.app[STORE].drone(_fleet(request), drone_id)
    if drone is None:
        return problem(404, "Unknown drone", f"no drone {drone_id!r} in this fleet")
    return _json(drone)


async def get_track(request: web.Request) -> web.Response:
    drone_id = request.match_info["drone_id"]
    try:
        limit = int(request.query.get("limit", "1000"))
        before = request.query.get("before")
        before_ms = None if before is None else int(before)
    except ValueError:
        return problem(400, "Bad query", "limit and before must be integers")
    if not 1 <= limit <= 10_000:
        return problem(400, "Bad query", "limit must be between 1 and 10000")
    points = await request.app[STORE].track(
        _fleet(request), drone_id, limit=limit, before_ms=before_ms
    )
    return _json({"drone_id": drone_id, "points": points})
