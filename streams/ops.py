"""The worker's ops endpoints (/healthz, /readyz, /metrics) on a small aiohttp server.

Faust's own web server stays disabled; this one shares ``dronetrack.web`` with the other services
so every service answers the same probes and metrics the same way. It runs as a mode.Service
beside the app, so the Faust worker starts it first and stops it last.
"""

from __future__ import annotations

import logging

import mode
from aiohttp import web

from dronetrack import web as ops_web
from dronetrack.web import READY_CHECKS, REGISTRY, Check

log = logging.getLogger(__name__)


def create_app() -> web.Application:
    app = web.Application()
    ops_web.instrument(app)
    return app


class OpsServer(mode.Service):
    def __init__(self, app: web.Application, host: str, port: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.app = app
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    @property
    def registry(self) -> object:
        return self.app[REGISTRY]

    def add_check(self, name: str, check: Check) -> None:
        self.app[READY_CHECKS][name] = check

    async def on_start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("ops endpoints listening", extra={"url": f"http://{self.host}:{self.port}"})

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
