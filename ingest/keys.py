"""Typed keys for what the ingest app holds."""

from __future__ import annotations

from aiohttp import web
from aiokafka import AIOKafkaProducer

from dronetrack.settings import Settings
from dronetrack.tokens import TokenTable
from ingest.metrics import IngestMetrics
from ingest.publisher import Publisher
from ingest.ratelimit import RateLimiter

SETTINGS = web.AppKey("settings", Settings)
PRODUCER = web.AppKey("producer", AIOKafkaProducer)
PUBLISHER = web.AppKey("publisher", Publisher)
TOKENS = web.AppKey("tokens", TokenTable)
LIMITER = web.AppKey("limiter", RateLimiter)
METRICS = web.AppKey("ingest_metrics", IngestMetrics)
