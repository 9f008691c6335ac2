"""Typed keys for what the dashboard app holds."""

from __future__ import annotations

import asyncio

from aiohttp import web

from dashboard.cache import Cache
from dashboard.live import LiveHub
from dashboard.reads import Reads
from dashboard.throttle import LoginThrottle
from dronetrack.settings import Settings
from dronetrack.store import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
CACHE = web.AppKey("cache", Cache)
READS = web.AppKey("reads", Reads)
HUB = web.AppKey("live_hub", LiveHub)
SESSION_KEY = web.AppKey("session_key", bytes)
# Password checks allowed at once: each takes ~46 MiB and a core for ~0.1 s, so a login flood
# queues here instead of exhausting the replica's memory.
LOGIN_SLOTS = web.AppKey("login_slots", asyncio.Semaphore)
THROTTLE = web.AppKey("login_throttle", LoginThrottle)
