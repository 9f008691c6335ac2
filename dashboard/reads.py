"""Every store read the dashboard makes, each through the shared cache under one key scheme.

Live reads (latest state, recent alerts, statistics) live for ``dashboard_cache_ttl_ms``; a
past window (replay, a track page with an explicit end) cannot change much and lives longer.
Each store read is counted, so /metrics and the load check can show what the cache saved.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
from prometheus_client import CollectorRegistry, Counter

from dashboard.cache import Cache
from dronetrack.passwords import fingerprint
from dronetrack.record import Telemetry
from dronetrack.store import Alert, FleetStats, Store, TrackPoint

T = TypeVar("T")

RECENT_ALERTS_MS = 24 * 3600 * 1000
RECENT_ALERTS_LIMIT = 200  # what the page and the live feed show; one shared cache key
USER_TTL_MS = 5_000
PAST_TTL_MS = 30_000

_encoder = msgspec.json.Encoder()


class Access(msgspec.Struct, frozen=True):
    """What a session may see: the part of a user record worth caching (never the hash)."""

    fleets: list[str]
    disabled: bool
    credential: str  # changes when the password does (passwords.fingerprint)
    sessions_valid_after: int = 0  # epoch ms: sessions issued until then are signed out


class Keys:
    """Every cache key, built here only, so a read and its invalidation cannot disagree."""

    @staticmethod
    def latest(fleet: str) -> str:
        return f"latest:{fleet}"

    @staticmethod
    def track(
        fleet: str, drone_id: str, since_ms: int | None, before_ms: int | None, limit: int
    ) -> str:
        return f"track:{fleet}:{drone_id}:{since_ms}:{before_ms}:{limit}"

    @staticmethod
    def alerts(fleet: str, since_ms: int | None, until_ms: int | None, limit: int) -> str:
        return f"alerts:{fleet}:{since_ms}:{until_ms}:{limit}"

    @staticmethod
    def drone_alerts(fleet: str, drone_id: str, limit: int) -> str:
        return f"drone_alerts:{fleet}:{drone_id}:{limit}"

    @staticmethod
    def stats(fleet: str, since_ms: int, until_ms: int) -> str:
        return f"stats:{fleet}:{since_ms}:{until_ms}"

    @staticmethod
    def user(name: str) -> str:
        return f"user:{name}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Reads:
    def __init__(self, store: Store, cache: Cache, ttl_ms: int, registry: CollectorRegistry):
        self.store = store
        self.cache = cache
        self.ttl_ms = ttl_ms
        self.store_reads = Counter(
            "dashboard_store_reads_total",
            "Reads the dashboard made from the store (after the cache).",
            ["query"],
            registry=registry,
        )
        self._decoders: dict[Any, msgspec.json.Decoder[Any]] = {}

    async def _cached(
        self, key: str, ttl_ms: int, type_: type[T], query: str, read: Callable[[], Awaitable[T]]
    ) -> T:
        async def load() -> bytes:
            self.store_reads.labels(query).inc()
            return _encoder.encode(await read())

        raw = await self.cache.get_or_load(key, ttl_ms, load)
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.json.Decoder(type_)
        value: T = decoder.decode(raw)
        return value

    async def latest(self, fleet: str) -> list[Telemetry]:
        return await self._cached(
            Keys.latest(fleet),
            self.ttl_ms,
            list[Telemetry],
            "latest",
            lambda: self.store.latest(fleet),
        )

    async def latest_json(self, fleet: str) -> bytes:
        """The fleet's latest state as a JSON array, straight from the cache (the hot path)."""

        async def load() -> bytes:
            self.store_reads.labels("latest").inc()
            return _encoder.encode(await self.store.latest(fleet))

        return await self.cache.get_or_load(Keys.latest(fleet), self.ttl_ms, load)

    async def drone(self, fleet: str, drone_id: str) -> Telemetry | None:
        """One drone, picked from the fleet's cached latest state (no extra store read)."""
        return next((d for d in await self.latest(fleet) if d.drone_id == drone_id), None)

    async def track(
        self, fleet: str, drone_id: str, *, limit: int, before_ms: int | None, since_ms: int | None
    ) -> list[TrackPoint]:
        ttl = self.ttl_ms if before_ms is None else PAST_TTL_MS
        return await self._cached(
            Keys.track(fleet, drone_id, since_ms, before_ms, limit),
            ttl,
            list[TrackPoint],
            "track",
            lambda: self.store.track(
                fleet, drone_id, limit=limit, before_ms=before_ms, since_ms=since_ms
            ),
        )

    async def alerts(
        self, fleet: str, *, since_ms: int | None, until_ms: int | None, limit: int
    ) -> list[Alert]:
        """A window of a fleet's alerts; without bounds, the last day's (a shared live key)."""
        live = until_ms is None
        until = now_ms() + 1 if until_ms is None else until_ms
        since = until - RECENT_ALERTS_MS if since_ms is None else since_ms
        return await self._cached(
            Keys.alerts(fleet, since_ms, until_ms, limit),
            self.ttl_ms if live else PAST_TTL_MS,
            list[Alert],
            "alerts",
            lambda: self.store.alerts(fleet, since_ms=since, until_ms=until, limit=limit),
        )

    async def recent_alerts(self, fleet: str) -> list[Alert]:
        return await self.alerts(fleet, since_ms=None, until_ms=None, limit=RECENT_ALERTS_LIMIT)

    async def forget_recent_alerts(self, fleet: str) -> None:
        """After an acknowledgement, so the next live read shows it at once."""
        await self.cache.delete(Keys.alerts(fleet, None, None, RECENT_ALERTS_LIMIT))

    async def drone_alerts(self, fleet: str, drone_id: str, limit: int) -> list[Alert]:
        return await self._cached(
            Keys.drone_alerts(fleet, drone_id, limit),
            self.ttl_ms,
            list[Alert],
            "drone_alerts",
            lambda: self.store.drone_alerts(fleet, drone_id, limit=limit),
        )

    async def fleet_stats(self, fleet: str, since_ms: int, until_ms: int) -> list[FleetStats]:
        # Minute-aligned, so every page asking for "the last hour" shares one key per minute.
        since = since_ms - since_ms % 60_000
        until = until_ms - until_ms % 60_000 + 60_000
        return await self._cached(
            Keys.stats(fleet, since, until),
            self.ttl_ms,
            list[FleetStats],
            "fleet_stats",
            lambda: self.store.fleet_stats(fleet, since_ms=since, until_ms=until),
        )

    async def access(self, name: str) -> Access | None:
        async def read() -> Access | None:
            user = await self.store.get_user(name)
            if user is None:
                return None
            return Access(
                list(user.fleets),
                user.disabled,
                fingerprint(user.password_hash),
                user.sessions_valid_after,
            )

        return await self._cached(Keys.user(name), USER_TTL_MS, Access | None, "user", read)  # type: ignore[arg-type]

    async def forget_user(self, name: str) -> None:
        """After a sign-out, so this replica's next request reads the user afresh."""
        await self.cache.delete(Keys.user(name))
