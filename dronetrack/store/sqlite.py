"""SQLite adapter: the embedded store. WAL mode lets the stream worker write while the
dashboard (another process) reads. All calls run on one private thread so the event loop never
blocks on disk and the connection is never shared between threads."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from dronetrack.record import Telemetry
from dronetrack.store import TrackPoint

T = TypeVar("T")

_LATEST_COLUMNS = [f.name for f in msgspec.structs.fields(Telemetry)]
_TRACK_COLUMNS = [f.name for f in msgspec.structs.fields(TrackPoint)]


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

    async def write_telemetry(self, records: Sequence[Telemetry]) -> None:
        rows = [msgspec.structs.asdict(r) for r in records]

        def write(db: sqlite3.Connection) -> None:
            with db:  # one transaction per batch
                db.execute("BEGIN")
                db.executemany(_UPSERT_LATEST, rows)
                db.executemany(_UPSERT_TRACK, rows)

        if rows:
            await self._run(write)

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
        self, fleet: str, drone_id: str, *, limit: int = 1_000, before_ms: int | None = None
    ) -> list[TrackPoint]:
        before = 2**63 - 1 if before_ms is None else before_ms
        sql = (
            f"SELECT {', '.join(_TRACK_COLUMNS)} FROM track_points"
            " WHERE fleet = ? AND drone_id = ? AND ts < ? ORDER BY ts DESC LIMIT ?"
        )
        rows = await self._run(
            lambda db: db.execute(sql, (fleet, drone_id, before, limit)).fetchall()
        )
        return [TrackPoint(**_present(r)) for r in rows]


def _present(row: sqlite3.Row) -> dict[str, Any]:
    return {k: row[k] for k in row.keys() if row[k] is not None}  # noqa: SIM118 - Row API


def _telemetry(row: sqlite3.Row) -> Telemetry:
    return Telemetry(**_present(row))
