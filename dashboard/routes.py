"""The dashboard's URL map, apart from the handlers (each /api/ path is in the OpenAPI document)."""

from __future__ import annotations

from pathlib import Path

import xstatic.pkg.leaflet
import xstatic.pkg.leaflet_markercluster
from aiohttp import web

from dashboard import auth, handlers
from dashboard.replay import replay_columns
from dashboard.tiles import setup_tiles

STATIC = Path(__file__).parent / "static"


def setup_routes(app: web.Application) -> None:
    r = app.router
    r.add_get("/", handlers.index)
    r.add_get("/api/openapi.json", handlers.openapi)
    r.add_post("/api/login", auth.login)
    r.add_post("/api/logout", auth.logout)
    r.add_get("/api/session", auth.session_info)
    r.add_get("/api/drones", handlers.list_drones)
    r.add_get("/api/drones/{drone_id}", handlers.get_drone)
    r.add_get("/api/drones/{drone_id}/track", handlers.get_track)
    r.add_get("/api/drones/{drone_id}/alerts", handlers.get_drone_alerts)
    r.add_get("/api/alerts", handlers.list_alerts)
    r.add_post("/api/alerts/{alert_id}/ack", handlers.acknowledge)
    r.add_get("/api/stats", handlers.fleet_stats)
    r.add_get("/api/replay", handlers.replay)
    r.add_get("/api/events", handlers.events)
    # The base map from a local MBTiles file (outside /api/, public like the scripts), and
    # replay in compact columns.
    setup_tiles(app)
    r.add_get("/api/replay/columns", replay_columns)
    # Exports of a drone's track (dashboard.exports).
    r.add_get("/api/drones/{drone_id}/track.{format}", handlers.export_track)
    r.add_static("/static/leaflet", xstatic.pkg.leaflet.BASE_DIR)
    r.add_static("/static/markercluster", xstatic.pkg.leaflet_markercluster.BASE_DIR)
    r.add_static("/static", STATIC)
