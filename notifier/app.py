"""The notifier's app factory: the consumer and its deliveries, plus /healthz, /readyz and
/metrics on a port of its own. SIGTERM stops consuming, commits what is finished and leaves."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from dronetrack.settings import PREFIX, Settings, SettingsError
from dronetrack.store import open_store
from dronetrack.web import READY_CHECKS, REGISTRY, instrument
from notifier.metrics import NotifierMetrics
from notifier.service import Notifier

SETTINGS = web.AppKey("settings", Settings)
NOTIFIER = web.AppKey("notifier", Notifier)


def check(settings: Settings) -> None:
    if settings.notify_offset_reset not in ("latest", "earliest"):
        raise SettingsError(f"{PREFIX}NOTIFY_OFFSET_RESET must be 'latest' or 'earliest'")
    if settings.notify_max_attempts < 1:
        raise SettingsError(f"{PREFIX}NOTIFY_MAX_ATTEMPTS must be at least 1")


def create_app(settings: Settings) -> web.Application:
    check(settings)
    app = web.Application()
    app[SETTINGS] = settings
    instrument(app)
    app.cleanup_ctx.append(_notifier)
    return app


async def _notifier(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    store = open_store(settings)
    await store.open()
    notifier = Notifier(settings, store, NotifierMetrics(app[REGISTRY]))
    app[NOTIFIER] = notifier
    app[READY_CHECKS]["notifier"] = notifier.ready
    try:
        await notifier.start()
        yield
    finally:
        await notifier.stop()
        await store.close()
