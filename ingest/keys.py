"""Typed keys for what the ingest app holds."""

from __future__ import annotations

from aiohttp import web

from dronetrack.settings import Settings
from ingest.handlers import TelemetryIntake

SETTINGS = web.AppKey("settings", Settings)
INTAKE = web.AppKey("intake", TelemetryIntake)
