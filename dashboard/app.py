"""The dashboard's app factory: the map page and a JSON API over the store, behind a login,
reading through the shared cache."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from dashboard import auth
from dashboard.cache import open_cache
from dashboard.compression import compress_json
from dashboard.keys import (
    CACHE,
    HUB,
    LOGIN_SLOTS,
    READS,
    SESSION_KEY,
    SETTINGS,
    STORE,
    THROTTLE,
)
from dashboard.live import LiveHub
from dashboard.reads import Reads
from dashboard.routes import setup_routes
from dashboard.throttle import LoginThrottle
from dronetrack.settings import Settings
from dronetrack.store import open_store
from dronetrack.web import READY_CHECKS, REGISTRY, instrument, render_problems

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[render_problems])
    app[SETTINGS] = settings
    if not settings.dashboard_session_secret:
        log.warning("no DRONETRACK_DASHBOARD_SESSION_SECRET: sessions end when this process does")
    app[SESSION_KEY] = auth.session_key(settings.dashboard_session_secret)
    app[LOGIN_SLOTS] = asyncio.Semaphore(2)
    instrument(app)
    app[THROTTLE] = LoginThrottle(
        app[REGISTRY],
        per_name=settings.dashboard_login_failures_per_name,
        per_address=settings.dashboard_login_failures_per_address,
        window_s=settings.dashboard_login_window_s,
    )
    app.middlewares.append(auth.guard)
    app.middlewares.append(compress_json)
    app.cleanup_ctx.append(_resources)
    app.on_shutdown.append(_end_streams)
    setup_routes(app)
    return app


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """Store, then cache, then the live hub on top; closed in the reverse order."""
    settings = app[SETTINGS]
    store = open_store(settings)
    await store.open()
    app[STORE] = store
    app[READY_CHECKS]["store"] = store.ping
    cache = open_cache(settings.redis_url, app[REGISTRY])
    app[CACHE] = cache
    reads = Reads(store, cache, settings.dashboard_cache_ttl_ms, app[REGISTRY])
    app[READS] = reads
    app[THROTTLE].store = store
    hub = LiveHub(reads, settings.dashboard_refresh_ms / 1000, app[REGISTRY])
    app[HUB] = hub
    try:
        yield
    finally:
        await hub.close()
        await cache.close()
        await store.close()


async def _end_streams(app: web.Application) -> None:
    """Open event streams would hold a graceful shutdown until its timeout: end them first."""
    if HUB in app:
        await app[HUB].close()
