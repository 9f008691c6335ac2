"""SQLite adapter: the embedded store. WAL mode lets the stream worker write while the
dashboard (another process) reads. All calls run on one private thread so the event loop never
blocks on disk and the connection is never shared between threads."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from dronetrack.record import Telemetry
from dronetrack.store import Alert, FleetStats, TrackPoint, User

T = TypeVar("T")

_LATEST_COLUMNS = [f.name for f in msgspec.structs.fields(Telemetry)]
_TRACK_COLUMNS = [f.name for f in msgspec.structs.fields(TrackPoint)]
_ALERT_COLUMNS = [f.name for f in msgspec.structs.fields(Alert)]
_STATS_COLUMNS = [f.name for f in msgspec.structs.fields(FleetStats)]


def _placeholders(columns: list[str]) -> str:
    return ", ".join(f":{c}" for c in columns)


_UPSERT_LATEST = f"""
INSERT INTO latest_state ({", ".join(_LATEST_COLUMNS)}) VALUES ({_placeholders(_LATEST_COLUMNS)})
ON CONFLICT (fleet, drone_id) DO UPDATE SET
  {", ".join(f"{c} = excluded.{c}" for c in _LATEST_COLUMNS if c not in ("fleet", "drone_id"))}
WHERE excluded.ts > latest_state.ts
   OR (excluded.ts = latest_state.ts
       AND coalesce(excluded.seq, -1) >= coalesce(latest_state.seq, -1))
"""
_UPSERT_TRACK = f"""
INSERT OR REPLACE INTO track_points (fleet, drone_id, {", ".join(_TRACK_COLUMNS)})
VALUES (:fleet, :drone_id, {_placeholders(_TRACK_COLUMNS)})
"""

# The worker owns raise/clear columns, the dashboard owns the acknowledgement: neither clobbers
# the other, and a clear, once written, stays.
_UPSERT_ALERT = """
INSERT INTO alerts (fleet, alert_id, drone_id, type, severity, raised_at, detail, cleared_at)
VALUES (:fleet, :alert_id, :drone_id, :type, :severity, :raised_at, :detail, :cleared_at)
ON CONFLICT (fleet, alert_id) DO UPDATE SET
  detail = excluded.detail,
  cleared_at = coalesce(alerts.cleared_at, excluded.cleared_at)
"""
_UPSERT_STATS = f"""
INSERT OR REPLACE INTO fleet_stats ({", ".join(_STATS_COLUMNS)})
VALUES ({_placeholders(_STATS_COLUMNS)})
"""
_ALERT_SELECT = f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts"


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._executor is None or self._db is None:
            raise RuntimeError("store is not open")
        db = self._db
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, db)

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite")
        self._db = await asyncio.get_running_loop().run_in_executor(self._executor, self._connect)

    def _connect(self) -> sqlite3.Connection:
        if str(self.path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA busy_timeout = 5000")
        db.executescript(files("dronetrack.store").joinpath("sqlite_schema.sql").read_text())
        return db

    async def close(self) -> None:
        if self._db is not None:
            await self._run(lambda db: db.close())
            self._db = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def _write_many(self, statements: Sequence[str], items: Sequence[msgspec.Struct]) -> None:
        """Run each statement over every item's fields, all in one transaction."""
        rows = [msgspec.structs.asdict(item) for item in items]

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN")
                for sql in statements:
                    db.executemany(sql, rows)

        if rows:
            await self._run(write)

    async def write_telemetry(self, records: Sequence[Telemetry]) -> None:
        await self._write_many((_UPSERT_LATEST, _UPSERT_TRACK), records)

    async def latest(self, fleet: str) -> list[Telemetry]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT * FROM latest_state WHERE fleet = ? ORDER BY drone_id", (fleet,)
            ).fetchall()
        )
        return [_telemetry(r) for r in rows]

    async def drone(self, fleet: str, drone_id: str) -> Telemetry | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT * FROM latest_state WHERE fleet = ? AND drone_id = ?", (fleet, drone_id)
            ).fetchone()
        )
        return None if row is None else _telemetry(row)

    async def track(
        self,
        fleet: str,
        drone_id: str,
        *,
        limit: int = 1_000,
        before_ms: int | None = None,
        since_ms: int | None = None,
    ) -> list[TrackPoint]:
        before = 2**63 - 1 if before_ms is None else before_ms
        since = 0 if since_ms is None else since_ms
        sql = (
            f"SELECT {', '.join(_TRACK_COLUMNS)} FROM track_points"
            " WHERE fleet = ? AND drone_id = ? AND ts >= ? AND ts < ? ORDER BY ts DESC LIMIT ?"
        )
        rows = await self._run(
            lambda db: db.execute(sql, (fleet, drone_id, since, before, limit)).fetchall()
        )
        return [TrackPoint(**_present(r)) for r in rows]

    async def write_alerts(self, alerts: Sequence[Alert]) -> None:
        await self._write_many((_UPSERT_ALERT,), alerts)

    async def alerts(
        self, fleet: str, *, since_ms: int, until_ms: int, limit: int = 500
    ) -> list[Alert]:
        sql = (
            f"{_ALERT_SELECT} WHERE fleet = ? AND raised_at >= ? AND raised_at < ?"
            " ORDER BY raised_at DESC, alert_id LIMIT ?"
        )
        rows = await self._run(
            lambda db: db.execute(sql, (fleet, since_ms, until_ms, limit)).fetchall()
        )
        return [Alert(**_present(r)) for r in rows]

    async def drone_alerts(self, fleet: str, drone_id: str, *, limit: int = 100) -> list[Alert]:
        sql = (
            f"{_ALERT_SELECT} WHERE fleet = ? AND drone_id = ?"
            " ORDER BY raised_at DESC, alert_id LIMIT ?"
        )
        rows = await self._run(lambda db: db.execute(sql, (fleet, drone_id, limit)).fetchall())
        return [Alert(**_present(r)) for r in rows]

    async def acknowledge_alert(
        self, fleet: str, alert_id: str, user: str, at_ms: int
    ) -> Alert | None:
        def ack(db: sqlite3.Connection) -> sqlite3.Row | None:
            with db:
                db.execute("BEGIN")
                db.execute(
                    "UPDATE alerts SET acknowledged_at = ?, acknowledged_by = ?"
                    " WHERE fleet = ? AND alert_id = ? AND acknowledged_at IS NULL",
                    (at_ms, user, fleet, alert_id),
                )
                row: sqlite3.Row | None = db.execute(
                    f"{_ALERT_SELECT} WHERE fleet = ? AND alert_id = ?", (fleet, alert_id)
                ).fetchone()
                return row

        row = await self._run(ack)
        return None if row is None else Alert(**_present(row))

    async def write_fleet_stats(self, stats: Sequence[FleetStats]) -> None:
        await self._write_many((_UPSERT_STATS,), stats)

    async def fleet_stats(self, fleet: str, *, since_ms: int, until_ms: int) -> list[FleetStats]:
        sql = (
            f"SELECT {', '.join(_STATS_COLUMNS)} FROM fleet_stats"
            " WHERE fleet = ? AND minute >= ? AND minute < ? ORDER BY minute"
        )
        rows = await self._run(lambda db: db.execute(sql, (fleet, since_ms, until_ms)).fetchall())
        return [FleetStats(**_present(r)) for r in rows]

    async def put_user(self, user: User) -> None:
        row = (user.name, user.password_hash, json.dumps(user.fleets), int(user.disabled))
        await self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO users (name, password_hash, fleets, disabled)"
                " VALUES (?, ?, ?, ?)",
                row,
            )
        )

    async def get_user(self, name: str) -> User | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT name, password_hash, fleets, disabled FROM users WHERE name = ?", (name,)
            ).fetchone()
        )
        if row is None:
            return None
        return User(
            name=row["name"],
            password_hash=row["password_hash"],
            fleets=json.loads(row["fleets"]),
            disabled=bool(row["disabled"]),
        )


def _present(row: sqlite3.Row) -> dict[str, Any]:
    return {k: row[k] for k in row.keys() if row[k] is not None}  # noqa: SIM118 - Row API


def _telemetry(row: sqlite3.Row) -> Telemetry:
    return Telemetry(**_present(row))
