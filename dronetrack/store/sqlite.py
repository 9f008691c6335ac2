"""SQLite adapter: the embedded store. WAL mode lets the stream worker write while the
dashboard (another process) reads. All calls run on one private thread so the event loop never
blocks on disk and the connection is never shared between threads.

Retention mirrors Cassandra's TTL: a row written now with a retention of N seconds expires at
now + N. Reads hide expired rows at once; the rows are deleted by ``purge_expired``, which the
adapter also runs itself at most once a minute on the write path."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from msgspec.structs import astuple

from dronetrack.record import Telemetry, is_newer
from dronetrack.settings import Settings
from dronetrack.store import (
    Alert,
    Channel,
    FleetStats,
    Flight,
    Retention,
    TrackPoint,
    User,
    failures_since_clearing,
    flight_id,
    migrations,
    parse_flight_id,
)

T = TypeVar("T")

_LATEST_COLUMNS = [f.name for f in msgspec.structs.fields(Telemetry)]
_TRACK_COLUMNS = [f.name for f in msgspec.structs.fields(TrackPoint)]
_LATEST_N = len(_LATEST_COLUMNS)
_ALERT_COLUMNS = [f.name for f in msgspec.structs.fields(Alert)]
_STATS_COLUMNS = [f.name for f in msgspec.structs.fields(FleetStats)]


def _placeholders(columns: list[str]) -> str:
    return ", ".join(f":{c}" for c in columns)


# The telemetry statements take positional parameters (the hot path: about 20 % cheaper than
# named ones), in the order of the columns lists.
_UPSERT_LATEST = f"""
INSERT INTO latest_state ({", ".join(_LATEST_COLUMNS)}) VALUES ({", ".join("?" * _LATEST_N)})
ON CONFLICT (fleet, drone_id) DO UPDATE SET
  {", ".join(f"{c} = excluded.{c}" for c in _LATEST_COLUMNS if c not in ("fleet", "drone_id"))}
WHERE excluded.ts > latest_state.ts
   OR (excluded.ts = latest_state.ts
       AND coalesce(excluded.seq, -1) >= coalesce(latest_state.seq, -1))
"""
_UPSERT_TRACK = """
INSERT OR REPLACE INTO track_points (fleet, drone_id, ts, lat, lon, alt_m, speed_mps, heading_deg,
                                     battery_pct, seq, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

# The worker owns raise/clear columns, the dashboard owns the acknowledgement: neither clobbers
# the other, and a clear, once written, stays. Rewriting an alert renews its retention, as
# rewriting every column does under a Cassandra TTL.
_UPSERT_ALERT = """
INSERT INTO alerts (fleet, alert_id, drone_id, type, severity, raised_at, detail, cleared_at,
                    expires_at)
VALUES (:fleet, :alert_id, :drone_id, :type, :severity, :raised_at, :detail, :cleared_at,
        :expires_at)
ON CONFLICT (fleet, alert_id) DO UPDATE SET
  detail = excluded.detail,
  cleared_at = coalesce(alerts.cleared_at, excluded.cleared_at),
  expires_at = excluded.expires_at
"""
_UPSERT_STATS = f"""
INSERT OR REPLACE INTO fleet_stats ({", ".join(_STATS_COLUMNS)}, expires_at)
VALUES ({_placeholders(_STATS_COLUMNS)}, :expires_at)
"""
# Acknowledgements: the earliest wins (ties: the greater user name), which is what Cassandra's
# last-write-wins gives with the adapter's reversed write timestamps, whatever order they arrive.
_ACK = """
UPDATE alerts SET acknowledged_at = :at, acknowledged_by = :user
WHERE fleet = :fleet AND alert_id = :alert_id AND (expires_at IS NULL OR expires_at > :now)
  AND (acknowledged_at IS NULL OR acknowledged_at > :at
       OR (acknowledged_at = :at AND acknowledged_by < :user))
"""
_LIVE = "(expires_at IS NULL OR expires_at > :now)"
_ALERT_SELECT = f"SELECT {', '.join(_ALERT_COLUMNS)} FROM alerts"
_FLIGHT_COLUMNS = [
    "fleet", "drone_id", "start_ms", "end_ms", "duration_ms", "ended_by", "distance_m",
    "max_alt_m", "max_speed_mps", "battery_start_pct", "battery_end_pct",
    "battery_used_pct_per_min", "points", "alert_ids",
]  # fmt: skip
_UPSERT_FLIGHT = f"""
INSERT OR REPLACE INTO flights ({", ".join(_FLIGHT_COLUMNS)})
VALUES ({", ".join("?" * len(_FLIGHT_COLUMNS))})
"""
_FLIGHT_SELECT = f"SELECT {', '.join(_FLIGHT_COLUMNS)} FROM flights"
_PURGE_EVERY_S = 60.0


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _expiry(ttl_s: int, now_ms: int) -> int | None:
    return None if ttl_s == 0 else now_ms + ttl_s * 1000


class SqliteStore:
    def __init__(self, path: Path, *, retention: Retention | None = None) -> None:
        self.path = path
        self.retention = retention or Retention.from_settings(Settings())
        self._executor: ThreadPoolExecutor | None = None
        self._db: sqlite3.Connection | None = None
        self._purged_at = 0.0

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
        # A batch touches a page per drone; a 64 MiB page cache and checkpoints every ~40 MiB of
        # WAL (not 4) roughly double the write rate of a thousand-drone fleet.
        db.execute("PRAGMA cache_size = -65536")
        db.execute("PRAGMA wal_autocheckpoint = 10000")
        migrate(db)
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

    async def _write_many(
        self, statements: Sequence[str], items: Sequence[msgspec.Struct], ttl_s: int
    ) -> None:
        """Run each statement over every item's fields, all in one transaction."""
        expires_at = _expiry(ttl_s, _now_ms())
        rows = [{**msgspec.structs.asdict(item), "expires_at": expires_at} for item in items]
        await self._transaction([(sql, rows) for sql in statements])

    async def _transaction(self, work: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Each statement over its rows, all in one transaction (and a purge once a minute)."""
        if not any(rows for _, rows in work):
            return
        now = _now_ms()
        purge = time.monotonic() - self._purged_at >= _PURGE_EVERY_S
        if purge:
            self._purged_at = time.monotonic()

        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute("BEGIN")
                for sql, rows in work:
                    db.executemany(sql, rows)
            if purge:
                _purge(db, now)

        await self._run(write)

    async def purge_expired(self) -> int:
        self._purged_at = time.monotonic()
        now = _now_ms()
        return await self._run(lambda db: _purge(db, now))

    async def write_telemetry(self, records: Sequence[Telemetry]) -> None:
        expires_at = _expiry(self.retention.track_s, _now_ms())
        track = [
            (r.fleet, r.drone_id, r.ts, r.lat, r.lon, r.alt_m, r.speed_mps, r.heading_deg,
             r.battery_pct, r.seq, expires_at)
            for r in records
        ]  # fmt: skip
        # Only each drone's newest record of the batch can become its latest state (at a tie
        # the later one, as _UPSERT_LATEST would leave it).
        newest: dict[tuple[str, str], Telemetry] = {}
        for r in records:
            held = newest.get((r.fleet, r.drone_id))
            if held is None or not is_newer(held, r):
                newest[(r.fleet, r.drone_id)] = r
        latest = [astuple(r) for r in newest.values()]
        await self._transaction([(_UPSERT_LATEST, latest), (_UPSERT_TRACK, track)])

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
        args = {
            "fleet": fleet,
            "drone_id": drone_id,
            "since": 0 if since_ms is None else since_ms,
            "before": 2**63 - 1 if before_ms is None else before_ms,
            "limit": limit,
            "now": _now_ms(),
        }
        sql = (
            f"SELECT {', '.join(_TRACK_COLUMNS)} FROM track_points"
            " WHERE fleet = :fleet AND drone_id = :drone_id AND ts >= :since AND ts < :before"
            f" AND {_LIVE} ORDER BY ts DESC LIMIT :limit"
        )
        rows = await self._run(lambda db: db.execute(sql, args).fetchall())
        return [TrackPoint(**_present(r)) for r in rows]

    async def write_alerts(self, alerts: Sequence[Alert]) -> None:
        await self._write_many((_UPSERT_ALERT,), alerts, self.retention.alerts_s)

    async def alerts(
        self, fleet: str, *, since_ms: int, until_ms: int, limit: int = 500
    ) -> list[Alert]:
        args = {"fleet": fleet, "since": since_ms, "until": until_ms, "limit": limit}
        sql = (
            f"{_ALERT_SELECT} WHERE fleet = :fleet AND raised_at >= :since AND raised_at < :until"
            f" AND {_LIVE} ORDER BY raised_at DESC, alert_id LIMIT :limit"
        )
        rows = await self._run(lambda db: db.execute(sql, {**args, "now": _now_ms()}).fetchall())
        return [Alert(**_present(r)) for r in rows]

    async def drone_alerts(self, fleet: str, drone_id: str, *, limit: int = 100) -> list[Alert]:
        args = {"fleet": fleet, "drone_id": drone_id, "limit": limit, "now": _now_ms()}
        sql = (
            f"{_ALERT_SELECT} WHERE fleet = :fleet AND drone_id = :drone_id AND {_LIVE}"
            " ORDER BY raised_at DESC, alert_id LIMIT :limit"
        )
        rows = await self._run(lambda db: db.execute(sql, args).fetchall())
        return [Alert(**_present(r)) for r in rows]

    async def acknowledge_alert(
        self, fleet: str, alert_id: str, user: str, at_ms: int
    ) -> Alert | None:
        args = {"fleet": fleet, "alert_id": alert_id, "user": user, "at": at_ms, "now": _now_ms()}

        def ack(db: sqlite3.Connection) -> sqlite3.Row | None:
            with db:
                db.execute("BEGIN")
                db.execute(_ACK, args)
                row: sqlite3.Row | None = db.execute(
                    f"{_ALERT_SELECT} WHERE fleet = :fleet AND alert_id = :alert_id AND {_LIVE}",
                    args,
                ).fetchone()
                return row

        row = await self._run(ack)
        return None if row is None else Alert(**_present(row))

    async def write_flights(self, flights: Sequence[Flight]) -> None:
        rows = [
            (f.fleet, f.drone_id, f.start, f.end, f.duration_ms, f.ended_by, f.distance_m,
             f.max_alt_m, f.max_speed_mps, f.battery_start_pct, f.battery_end_pct,
             f.battery_used_pct_per_min, f.points, json.dumps(f.alert_ids))
            for f in flights
        ]  # fmt: skip
        await self._transaction([(_UPSERT_FLIGHT, rows)])

    async def flights(
        self,
        fleet: str,
        drone_id: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
    ) -> list[Flight]:
        args = {
            "fleet": fleet,
            "drone_id": drone_id,
            "since": 0 if since_ms is None else since_ms,
            "until": 2**63 - 1 if until_ms is None else until_ms,
            "limit": limit,
        }
        sql = (
            f"{_FLIGHT_SELECT} WHERE fleet = :fleet AND drone_id = :drone_id"
            " AND start_ms >= :since AND start_ms < :until ORDER BY start_ms DESC LIMIT :limit"
        )
        rows = await self._run(lambda db: db.execute(sql, args).fetchall())
        return [_flight(r) for r in rows]

    async def flight(self, fleet: str, flight_id: str) -> Flight | None:
        key = parse_flight_id(fleet, flight_id)
        if key is None:
            return None
        sql = f"{_FLIGHT_SELECT} WHERE fleet = ? AND drone_id = ? AND start_ms = ?"
        row = await self._run(lambda db: db.execute(sql, (fleet, *key)).fetchone())
        return None if row is None else _flight(row)

    async def write_fleet_stats(self, stats: Sequence[FleetStats]) -> None:
        await self._write_many((_UPSERT_STATS,), stats, self.retention.stats_s)

    async def fleet_stats(self, fleet: str, *, since_ms: int, until_ms: int) -> list[FleetStats]:
        args = {"fleet": fleet, "since": since_ms, "until": until_ms, "now": _now_ms()}
        sql = (
            f"SELECT {', '.join(_STATS_COLUMNS)} FROM fleet_stats"
            f" WHERE fleet = :fleet AND minute >= :since AND minute < :until AND {_LIVE}"
            " ORDER BY minute"
        )
        rows = await self._run(lambda db: db.execute(sql, args).fetchall())
        return [FleetStats(**_present(r)) for r in rows]

    async def put_user(self, user: User) -> None:
        # An upsert, not INSERT OR REPLACE: a new password or new fleets keep the sessions'
        # validity (a sign-out before it stays in force).
        row = (user.name, user.password_hash, json.dumps(user.fleets), int(user.disabled))
        await self._run(
            lambda db: db.execute(
                "INSERT INTO users (name, password_hash, fleets, disabled) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash,"
                " fleets = excluded.fleets, disabled = excluded.disabled",
                row,
            )
        )

    async def get_user(self, name: str) -> User | None:
        row = await self._run(
            lambda db: db.execute(f"{_USER_SELECT} WHERE name = ?", (name,)).fetchone()
        )
        return None if row is None else _user(row)

    async def list_users(self) -> list[User]:
        rows = await self._run(lambda db: db.execute(f"{_USER_SELECT} ORDER BY name").fetchall())
        return [_user(r) for r in rows]

    async def disable_user(self, name: str) -> bool:
        changed = await self._run(
            lambda db: db.execute("UPDATE users SET disabled = 1 WHERE name = ?", (name,)).rowcount
        )
        return changed > 0

    async def end_sessions(self, name: str, at_ms: int) -> bool:
        changed = await self._run(
            lambda db: (
                db.execute(
                    "UPDATE users SET sessions_valid_after = max(sessions_valid_after, ?)"
                    " WHERE name = ?",
                    (at_ms, name),
                ).rowcount
            )
        )
        return changed > 0

    async def note_login_failure(self, scope: str, at_ms: int, *, window_s: int) -> None:
        await self._login_event(scope, at_ms, window_s, cleared=False)

    async def clear_login_failures(self, scope: str, at_ms: int, *, window_s: int) -> None:
        await self._login_event(scope, at_ms, window_s, cleared=True)

    async def _login_event(self, scope: str, at_ms: int, window_s: int, *, cleared: bool) -> None:
        row = (scope, at_ms, uuid.uuid4().hex, int(cleared), at_ms + window_s * 1000)
        await self._run(
            lambda db: db.execute(
                "INSERT INTO login_failures (scope, at, id, cleared, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                row,
            )
        )

    async def login_failures(self, scope: str, *, since_ms: int, limit: int) -> list[int]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT at, cleared FROM login_failures WHERE scope = ? AND at > ?"
                " ORDER BY at DESC LIMIT ?",
                (scope, since_ms, limit),
            ).fetchall()
        )
        return failures_since_clearing((r["at"], bool(r["cleared"])) for r in rows)

    async def put_channel(self, channel: Channel) -> None:
        row = {
            **msgspec.structs.asdict(channel),
            "alert_types": json.dumps(sorted(channel.alert_types)),
            "severities": json.dumps(sorted(channel.severities)),
        }
        await self._transaction([(_PUT_CHANNEL, [row])])

    async def channels(self, fleet: str) -> list[Channel]:
        rows = await self._run(
            lambda db: db.execute(
                f"{_CHANNEL_SELECT} WHERE fleet = ? ORDER BY channel_id", (fleet,)
            ).fetchall()
        )
        return [_channel(r) for r in rows]

    async def remove_channel(self, fleet: str, channel_id: str) -> bool:
        removed = await self._run(
            lambda db: (
                db.execute(
                    "DELETE FROM notify_channels WHERE fleet = ? AND channel_id = ?",
                    (fleet, channel_id),
                ).rowcount
            )
        )
        return removed > 0


_USER_SELECT = "SELECT name, password_hash, fleets, disabled, sessions_valid_after FROM users"
_CHANNEL_COLUMNS = [f.name for f in msgspec.structs.fields(Channel)]
_CHANNEL_SELECT = f"SELECT {', '.join(_CHANNEL_COLUMNS)} FROM notify_channels"
_PUT_CHANNEL = f"""
INSERT OR REPLACE INTO notify_channels ({", ".join(_CHANNEL_COLUMNS)})
VALUES ({_placeholders(_CHANNEL_COLUMNS)})
"""


def _channel(row: sqlite3.Row) -> Channel:
    fields = _present(row)
    fields["alert_types"] = json.loads(row["alert_types"])
    fields["severities"] = json.loads(row["severities"])
    return Channel(**fields)


def _flight(row: sqlite3.Row) -> Flight:
    fields = _present(row)
    start, end = fields.pop("start_ms"), fields.pop("end_ms")
    alert_ids = json.loads(fields.pop("alert_ids"))
    return Flight(
        **fields,
        flight_id=flight_id(row["fleet"], row["drone_id"], start),
        start=start,
        end=end,
        alert_ids=alert_ids,
    )


def _user(row: sqlite3.Row) -> User:
    return User(
        name=row["name"],
        password_hash=row["password_hash"],
        fleets=json.loads(row["fleets"]),
        disabled=bool(row["disabled"]),
        sessions_valid_after=row["sessions_valid_after"],
    )


def migrate(db: sqlite3.Connection) -> tuple[int, int]:
    """Bring the schema to the newest version in one transaction; (version before, after).

    ``PRAGMA user_version`` holds the version. The write lock is taken before it is read, so two
    processes opening the same file at once cannot both apply a migration."""
    found = migrations.load("sqlite")
    with db:
        db.execute("BEGIN IMMEDIATE")
        before: int = db.execute("PRAGMA user_version").fetchone()[0]
        for migration in found:
            if migration.version > before:
                for statement in migration.statements():
                    db.execute(statement)
        after = max(before, found[-1].version if found else 0)
        db.execute(f"PRAGMA user_version = {after}")
    return before, after


def schema_version(db: sqlite3.Connection) -> int:
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    return version


def _purge(db: sqlite3.Connection, now_ms: int) -> int:
    deleted = 0
    with db:
        db.execute("BEGIN")
        for table in ("track_points", "alerts", "fleet_stats", "login_failures"):
            deleted += db.execute(f"DELETE FROM {table} WHERE expires_at <= ?", (now_ms,)).rowcount
    return deleted


def _present(row: sqlite3.Row) -> dict[str, Any]:
    return {k: row[k] for k in row.keys() if row[k] is not None}  # noqa: SIM118 - Row API


def _telemetry(row: sqlite3.Row) -> Telemetry:
    return Telemetry(**_present(row))
