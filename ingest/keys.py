"""Typed keys for what the ingest app holds."""

from __future__ import annotations

from aiohttp import web
from aiokafka import AIOKafkaProducer

from dronetrack.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
PRODUCER = web.AppKey("producer", AIOKafkaProducer)
