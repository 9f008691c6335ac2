"""The store port: the few reads and writes the services need, whatever holds the tables.

Adapters: ``sqlite`` (embedded default). Every write is idempotent: replaying a record leaves the
tables as they were, so at-least-once delivery from Kafka neither loses nor duplicates anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from dronetrack.record import Telemetry
from dronetrack.settings import Settings


class TrackPoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One point of a flight track (what a map trail and a battery chart need)."""

    ts: int
    lat: float
    lon: float
    alt_m: float
    speed_mps: float
    heading_deg: float
    battery_pct: float
    seq: int | None = None


class Store(Protocol):
    async def open(self) -> None:
        """Connect and make sure the schema exists."""

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise if the store cannot serve a query (readiness)."""

    async def write_telemetry(self, records: Sequence[Telemetry]) -> None:
        """Upsert latest state (never moving a drone backwards in time) and track points."""

    async def latest(self, fleet: str) -> list[Telemetry]:
        """The latest state of every drone of a fleet, ordered by drone id."""

    async def drone(self, fleet: str, drone_id: str) -> Telemetry | None: ...

    async def track(
        self, fleet: str, drone_id: str, *, limit: int = 1_000, before_ms: int | None = None
    ) -> list[TrackPoint]:
        """Track points of one drone, newest first, strictly older than ``before_ms`` if given."""


def open_store(settings: Settings) -> Store:
    """The adapter the settings select (not yet opened)."""
    if settings.store == "sqlite":
        from dronetrack.store.sqlite import SqliteStore

        return SqliteStore(settings.sqlite_path)
    raise ValueError(f"DRONETRACK_STORE={settings.store!r}: supported stores are 'sqlite'")
