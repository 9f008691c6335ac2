"""Typed keys for what the dashboard app holds."""

from __future__ import annotations

from aiohttp import web

from dronetrack.settings import Settings
from dronetrack.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
