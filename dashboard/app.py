"""The dashboard's app factory: a JSON API over the materialized tables and the map page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import xstatic.pkg.leaflet
from aiohttp import web

from dashboard import handlers
from dashboard.keys import SETTINGS, STORE
from dronetrack.settings import Settings
from dronetrack.store import open_store
from dronetrack.web import READY_CHECKS, instrument

STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    instrument(app)
    app.cleanup_ctx.append(_store)
    app.router.add_get("/", handlers.index)
    app.router.add_get("/api/drones", handlers.list_drones)
    app.router.add_get("/api/drones/{drone_id}", handlers.get_drone)
    app.router.add_get("/api/drones/{drone_id}/track", handlers.get_track)
    app.router.add_static("/static/leaflet", xstatic.pkg.leaflet.BASE_DIR)
    app.router.add_static("/static", STATIC)
    return app


async def _store(app: web.Application) -> AsyncIterator[None]:
    store = open_store(app[SETTINGS])
    await store.open()
    app[STORE] = store
    app[READY_CHECKS]["store"] = store.ping
    try:
        yield
    finally:
        await store.close()
