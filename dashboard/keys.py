"""Typed keys for what the dashboard app holds."""

from __future__ import annotations

from aiohttp import web

from dashboard.cache import Cache
from dashboard.live import LiveHub
from dashboard.reads import Reads
from dronetrack.settings import Settings
from dronetrack.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
CACHE = web.AppKey("cache", Cache)
READS = web.AppKey("reads", Reads)
HUB = web.AppKey("live_hub", LiveHub)
SESSION_KEY = web.AppKey("session_key", bytes)
