"""Cassandra adapter: the production store.

The driver runs its own I/O thread; reads are bridged into asyncio with
``call_soon_threadsafe``, so the event loop never waits on the driver. Writes go through a
bounded pipeline of driver futures (``_Pipeline``): at most ``cassandra_max_concurrent_writes``
in flight, and one wake-up of the loop per refill rather than one per request. Statements are
prepared once on ``open``, with the keyspace in their text, and marked idempotent (they all are:
see ``cql.py``), which is what lets the retry policy and the callers retry them.

The write path is shaped by what a request costs the worker (tens of µs of driver Python each):
telemetry goes out as single-partition unlogged batches (a fleet's latest states, each drone-day's
track points), one latest-state row per drone per batch, and each day mark once a day per
process.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import datetime as dt
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any

import msgspec
from cassandra import InvalidRequest, OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
from cassandra.cluster import NoHostAvailable
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, BoundStatement
from cassandra.util import Date

from dronetrack import record
from dronetrack.record import Telemetry
from dronetrack.settings import Settings
from dronetrack.store import (
    Alert,
    Channel,
    FleetStats,
    Flight,
    Retention,
    SchemaOutdated,
    StoreError,
    StoreUnavailable,
    TrackPoint,
    User,
    cql,
    failures_since_clearing,
    flight_id,
    migrations,
    parse_flight_id,
)
from dronetrack.store.cassandra_cluster import build_cluster, connect, consistency, where
from dronetrack.store.cassandra_schema import schema_version
from dronetrack.store.cql import qualify

DAY_MS = 86_400_000
_MAX_TS = 253_402_300_799_999  # the record's upper bound: 9999-12-31T23:59:59.999Z
# Acknowledgements are written with write timestamp ACK_EPOCH - at_ms, so under last-write-wins
# the earliest acknowledgement wins whatever order they arrive in. Read as microseconds the
# values lie in 1970 (2100-01-01 minus now, in ms, is ~2.3e12 us: late January 1970): far
# below real write times, never in the future, and they only ever compete with each other
# (nothing else writes or deletes the acknowledgement columns).
_ACK_EPOCH = 4_102_444_800_000  # 2100-01-01 in ms
# Rows of one partition travel in unlogged batches of at most this many (single-partition
# batches are one mutation: the server neither warns about nor refuses their size).
_BATCH_ROWS = 64
# Latest-state records carry their order within one event-time millisecond as a fixed-width
# prefix: seq + 1 (0 without a seq) in 20 digits, then a space. See latest_write_time.
_ORDER_DIGITS = 21
# Day marks this process has written today, forgotten past this many (then written again).
_MARKS_KEPT = 100_000
_record_decoder = msgspec.json.Decoder(Telemetry)


def day_of(ts_ms: int) -> Date:
    """The UTC day partition of an epoch-ms time."""
    return Date(ts_ms // DAY_MS)


def to_ms(value: dt.datetime) -> int:
    """The driver returns ``timestamp`` columns as naive UTC datetimes, built through a float,
    so far from 1970 they can be a microsecond short: round to the nearest millisecond."""
    return (calendar.timegm(value.utctimetuple()) * 1_000_000 + value.microsecond + 500) // 1000


def _opt_ms(value: dt.datetime | None) -> int | None:
    return None if value is None else to_ms(value)


def _unset(value: Any) -> Any:
    """None as 'leave this column alone' (no tombstone), not as 'write a null'."""
    return UNSET_VALUE if value is None else value


def latest_write_time(rec: Telemetry) -> int:
    """Write timestamp (µs) for latest state: the event time. Two records of one millisecond
    get the same timestamp, and Cassandra then keeps the greater cell value: ``latest_value``
    starts with the record's ``seq`` in fixed width, so the greater ``seq`` wins over its whole
    range, as ``record.is_newer`` orders (a µs offset could order only 1000 values)."""
    return rec.ts * 1000


def latest_value(rec: Telemetry) -> str:
    """The ``latest_state.record`` cell: order prefix (see latest_write_time), then the JSON."""
    order = 0 if rec.seq is None else rec.seq + 1
    return f"{order:020d} {record.encode(rec).decode()}"


def decode_latest(value: str) -> Telemetry:
    """A ``latest_state.record`` cell; rows written before the order prefix are plain JSON."""
    return _record_decoder.decode(value if value[:1] == "{" else value[_ORDER_DIGITS:])


def ack_write_time(at_ms: int) -> int:
    """Write timestamp (µs) for an acknowledgement made at ``at_ms``: earlier is greater."""
    return _ACK_EPOCH - at_ms


class CassandraStore:
    def __init__(self, settings: Settings, *, retention: Retention | None = None) -> None:
        self.settings = settings
        self.retention = retention or Retention.from_settings(settings)
        self._cluster: Any = None
        self._session: Any = None
        self._prepared: dict[str, Any] = {}
        self._serializers: dict[str, list[Any]] = {}
        self._write_cl: int | None = None
        self._window = max(1, settings.cassandra_max_concurrent_writes)
        self._marked: set[tuple[str, str, int]] = set()
        self._marked_on = 0  # the UTC day (since the epoch) the marks in _marked were written

    def __repr__(self) -> str:
        return (
            f"CassandraStore({where(self.settings)}, keyspace={self.settings.cassandra_keyspace!r})"
        )

    # -- lifecycle --------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, check the schema version and prepare every statement (all off the loop)."""
        await asyncio.to_thread(self._open_blocking)

    def _open_blocking(self) -> None:
        cluster = build_cluster(self.settings)
        keyspace = self.settings.cassandra_keyspace
        session = connect(cluster, self.settings, keyspace)
        try:
            have = schema_version(session, keyspace)
        except InvalidRequest as exc:  # no schema_migrations table: never migrated
            cluster.shutdown()
            raise SchemaOutdated(
                f"keyspace {self.settings.cassandra_keyspace!r} has no schema: "
                f"run `dronetrack db migrate` ({exc})"
            ) from None
        need = migrations.latest_version("cassandra")
        if have < need:
            cluster.shutdown()
            raise SchemaOutdated(
                f"keyspace {self.settings.cassandra_keyspace!r} is at schema version {have},"
                f" this code needs {need}: run `dronetrack db migrate`"
            )
        write_cl = consistency(
            self.settings.cassandra_write_consistency, "CASSANDRA_WRITE_CONSISTENCY"
        )
        try:
            for name, text in cql.STATEMENTS.items():
                prepared = session.prepare(qualify(text, keyspace))
                prepared.is_idempotent = True
                if text.startswith(("INSERT", "UPDATE")):
                    prepared.consistency_level = write_cl
                self._prepared[name] = prepared
                if prepared.column_encryption_policy is None:
                    self._serializers[name] = [c.type.serialize for c in prepared.column_metadata]
        except BaseException:
            cluster.shutdown()
            raise
        self._write_cl = write_cl
        self._cluster, self._session = cluster, session

    async def close(self) -> None:
        if self._cluster is not None:
            cluster, self._cluster, self._session = self._cluster, None, None
            await asyncio.to_thread(cluster.shutdown)

    async def ping(self) -> None:
        await self._query("schema_version", (cql.MIGRATION_SCOPE,))

    # -- the asyncio bridge -----------------------------------------------------------------
    def _bridge(self, response: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(fn: Any, value: Any) -> None:
            if not future.done():
                fn(value)

        def on_result(rows: Any) -> None:
            # RuntimeError: the loop closed while the request was in flight.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, future.set_result, rows)

        def on_error(exc: BaseException) -> None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, future.set_exception, exc)

        response.add_callbacks(on_result, on_error)
        return future

    def _statement(self, name: str, params: Sequence[Any]) -> Any:
        if self._session is None:
            raise StoreError("store is not open")
        return self._bind(name, params)

    def _bind(self, name: str, params: Sequence[Any]) -> Any:
        """``PreparedStatement.bind``, without what costs it half its time per row: the driver
        (3.30) builds a column descriptor per value for column encryption, used by none of
        our statements. Values are serialised by the same column types the driver uses."""
        prepared = self._prepared[name]
        serializers = self._serializers.get(name)
        if serializers is None or len(params) != len(serializers):
            return prepared.bind(params)
        version = prepared.protocol_version
        statement = BoundStatement(prepared)
        statement.raw_values = params
        statement.values = [
            v if v is None or v is UNSET_VALUE else serialize(v, version)
            for serialize, v in zip(serializers, params, strict=True)
        ]
        return statement

    async def _query(
        self, name: str, params: Sequence[Any], *, limit: int | None = None
    ) -> list[Any]:
        """Run a read and gather its pages (the driver pages by fetch_size) up to ``limit``."""
        statement = self._statement(name, params)
        if limit is not None:
            statement.fetch_size = min(max(limit, 1), 5_000)
        response = self._session.execute_async(statement)
        rows: list[Any] = list(await _guard(self._bridge(response), self.settings) or [])
        while response.has_more_pages and (limit is None or len(rows) < limit):
            response.clear_callbacks()
            response.start_fetching_next_page()
            rows.extend(await _guard(self._bridge(response), self.settings) or [])
        return rows if limit is None else rows[:limit]

    async def _write(self, statement: Any) -> None:
        await self._write_all((statement,))

    async def _write_all(self, statements: Iterable[Any]) -> None:
        if self._session is None:
            raise StoreError("store is not open")
        await _guard(_Pipeline(self._window).run(self._session, statements), self.settings)

    def _batch(self, kind: int, items: Iterable[tuple[str, Sequence[Any]]]) -> Any:
        batch = BatchStatement(batch_type=kind, consistency_level=self._write_cl)
        for name, params in items:
            batch.add(self._statement(name, params))
        batch.is_idempotent = True
        return batch

    def _rows(self, name: str, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """Rows of one partition as unlogged batches of at most _BATCH_ROWS (one row: no batch)."""
        if len(rows) == 1:
            return [self._bind(name, rows[0])]
        batches = []
        for start in range(0, len(rows), _BATCH_ROWS):
            batch = BatchStatement(BatchType.UNLOGGED, consistency_level=self._write_cl)
            for params in rows[start : start + _BATCH_ROWS]:
                batch.add(self._bind(name, params))
            batch.is_idempotent = True
            batches.append(batch)
        return batches

    def _mark_days(
        self, fleet_series_days: set[tuple[str, str, int]], ttl_s: int
    ) -> tuple[list[Any], set[tuple[str, str, int]]]:
        """Day marks this process has not written yet today, and the marks they are.

        A mark is written again each (UTC, wall-clock) day its series gets rows, with a day
        more TTL than the rows: every row written today expires before the mark written today
        (late rows for an old day included). An expired day read in vain costs one empty
        query; a mark gone too early would hide rows."""
        today = int(time.time()) // 86_400
        if today != self._marked_on:
            self._marked.clear()
            self._marked_on = today
        new = fleet_series_days - self._marked
        mark_ttl = ttl_s + DAY_MS // 1000 if ttl_s else 0
        return [
            self._statement("mark_day", (fleet, series, Date(day), mark_ttl))
            for fleet, series, day in new
        ], new

    def _remember(self, marks: set[tuple[str, str, int]]) -> None:
        """After the write succeeded: the marks need not be written again today."""
        if len(self._marked) + len(marks) > _MARKS_KEPT:
            self._marked.clear()
        self._marked |= marks

    # -- telemetry --------------------------------------------------------------------------
    async def write_telemetry(self, records: Sequence[Telemetry]) -> None:
        if not records:
            return
        if self._session is None:
            raise StoreError("store is not open")
        ttl = self.retention.track_s
        newest: dict[tuple[str, str], Telemetry] = {}
        partitions: dict[tuple[str, str, int], list[tuple[Any, ...]]] = defaultdict(list)
        for r in records:
            key = (r.fleet, r.drone_id)
            held = newest.get(key)
            if held is None or not record.is_newer(held, r):
                newest[key] = r
            partitions[(r.fleet, r.drone_id, r.ts // DAY_MS)].append(
                (r.ts, r.lat, r.lon, r.alt_m, r.speed_mps, r.heading_deg, r.battery_pct,
                 UNSET_VALUE if r.seq is None else r.seq, ttl)
            )  # fmt: skip
        by_fleet: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for r in newest.values():
            by_fleet[r.fleet].append(
                (r.fleet, r.drone_id, r.ts, latest_value(r), latest_write_time(r))
            )
        statements = []
        for rows in by_fleet.values():
            statements.extend(self._rows("upsert_latest", rows))
        for (fleet, drone_id, day), points in partitions.items():
            head = (fleet, drone_id, Date(day))
            statements.extend(self._rows("insert_track", [head + p for p in points]))
        marks, new = self._mark_days({(f, f"track:{d}", day) for f, d, day in partitions}, ttl)
        await self._write_all(statements + marks)
        self._remember(new)

    async def latest(self, fleet: str) -> list[Telemetry]:
        rows = await self._query("latest", (fleet,))
        return [decode_latest(r.record) for r in rows]

    async def drone(self, fleet: str, drone_id: str) -> Telemetry | None:
        rows = await self._query("drone", (fleet, drone_id))
        return decode_latest(rows[0].record) if rows else None

    async def _days(self, fleet: str, series: str, first_ms: int, last_ms: int) -> list[int]:
        """Days of a series that hold rows, newest first, within [first_ms, last_ms]."""
        if last_ms < first_ms:
            return []
        rows = await self._query(
            "days_desc", (fleet, series, day_of(max(first_ms, 0)), day_of(min(last_ms, _MAX_TS)))
        )
        return [r.day.days_from_epoch for r in rows]

    async def track(
        self,
        fleet: str,
        drone_id: str,
        *,
        limit: int = 1_000,
        before_ms: int | None = None,
        since_ms: int | None = None,
    ) -> list[TrackPoint]:
        if limit <= 0:  # CQL refuses LIMIT 0
            return []
        since = 0 if since_ms is None else since_ms
        before = _MAX_TS + 1 if before_ms is None else before_ms
        points: list[TrackPoint] = []
        for day in await self._days(fleet, f"track:{drone_id}", since, before - 1):
            if len(points) >= limit:
                break
            rows = await self._query(
                "track_day",
                (fleet, drone_id, Date(day), since, before, limit - len(points)),
                limit=limit - len(points),
            )
            points.extend(
                TrackPoint(
                    ts=to_ms(r.ts),
                    lat=r.lat,
                    lon=r.lon,
                    alt_m=r.alt_m,
                    speed_mps=r.speed_mps,
                    heading_deg=r.heading_deg,
                    battery_pct=r.battery_pct,
                    seq=r.seq,
                )
                for r in rows
            )
        return points

    # -- alerts -----------------------------------------------------------------------------
    async def write_alerts(self, alerts: Sequence[Alert]) -> None:
        ttl = self.retention.alerts_s
        statements = []
        for a in alerts:
            day, cleared = day_of(a.raised_at), _unset(a.cleared_at)
            statements.append(
                # Logged: the three views of one alert are written all or nothing.
                self._batch(
                    BatchType.LOGGED,
                    [
                        (
                            "insert_alert",
                            (
                                a.fleet,
                                a.alert_id,
                                a.drone_id,
                                a.type,
                                a.severity,
                                a.raised_at,
                                a.detail,
                                cleared,
                                ttl,
                            ),
                        ),
                        (
                            "insert_alert_by_day",
                            (
                                a.fleet,
                                day,
                                a.raised_at,
                                a.alert_id,
                                a.drone_id,
                                a.type,
                                a.severity,
                                a.detail,
                                cleared,
                                ttl,
                            ),
                        ),
                        (
                            "insert_alert_by_drone",
                            (
                                a.fleet,
                                a.drone_id,
                                a.raised_at,
                                a.alert_id,
                                a.type,
                                a.severity,
                                a.detail,
                                cleared,
                                ttl,
                            ),
                        ),
                    ],
                )
            )
        marks, new = self._mark_days(
            {(a.fleet, "alerts", a.raised_at // DAY_MS) for a in alerts}, ttl
        )
        await self._write_all(statements + marks)
        self._remember(new)

    async def alerts(
        self, fleet: str, *, since_ms: int, until_ms: int, limit: int = 500
    ) -> list[Alert]:
        found: list[Alert] = []
        if limit <= 0:
            return found
        for day in await self._days(fleet, "alerts", since_ms, until_ms - 1):
            if len(found) >= limit:
                break
            rows = await self._query(
                "alerts_day",
                (fleet, Date(day), since_ms, until_ms, limit - len(found)),
                limit=limit - len(found),
            )
            found.extend(_alert(fleet, r, r.drone_id) for r in rows)
        return found

    async def drone_alerts(self, fleet: str, drone_id: str, *, limit: int = 100) -> list[Alert]:
        if limit <= 0:
            return []
        rows = await self._query("drone_alerts", (fleet, drone_id, limit), limit=limit)
        return [_alert(fleet, r, drone_id) for r in rows]

    async def acknowledge_alert(
        self, fleet: str, alert_id: str, user: str, at_ms: int
    ) -> Alert | None:
        rows = await self._query("alert", (fleet, alert_id))
        if not rows:
            return None
        row = rows[0]
        raised_at = to_ms(row.raised_at)
        # The acknowledgement lives exactly as long as the alert's own columns.
        ttl = row[-1] or 0
        head = (ttl, ack_write_time(at_ms), at_ms, user)
        await self._write(
            self._batch(
                BatchType.LOGGED,
                [
                    ("ack_alert", (*head, fleet, alert_id)),
                    ("ack_alert_by_day", (*head, fleet, day_of(raised_at), raised_at, alert_id)),
                    ("ack_alert_by_drone", (*head, fleet, row.drone_id, raised_at, alert_id)),
                ],
            )
        )
        rows = await self._query("alert", (fleet, alert_id))
        return _alert(fleet, rows[0], rows[0].drone_id, alert_id=alert_id) if rows else None

    # -- fleet statistics -------------------------------------------------------------------
    async def write_fleet_stats(self, stats: Sequence[FleetStats]) -> None:
        ttl = self.retention.stats_s
        statements = [
            self._statement(
                "upsert_stats",
                (
                    s.fleet,
                    day_of(s.minute),
                    s.minute,
                    s.drones_active,
                    s.drones_in_flight,
                    s.battery_mean,
                    s.battery_min,
                    s.alerts_raised,
                    ttl,
                ),
            )
            for s in stats
        ]
        marks, new = self._mark_days({(s.fleet, "stats", s.minute // DAY_MS) for s in stats}, ttl)
        await self._write_all(statements + marks)
        self._remember(new)

    async def fleet_stats(self, fleet: str, *, since_ms: int, until_ms: int) -> list[FleetStats]:
        found: list[FleetStats] = []
        for day in reversed(await self._days(fleet, "stats", since_ms, until_ms - 1)):
            rows = await self._query("stats_day", (fleet, Date(day), since_ms, until_ms))
            found.extend(
                FleetStats(
                    fleet=fleet,
                    minute=to_ms(r.minute),
                    drones_active=r.drones_active,
                    drones_in_flight=r.drones_in_flight,
                    battery_mean=r.battery_mean,
                    battery_min=r.battery_min,
                    alerts_raised=r.alerts_raised,
                )
                for r in rows
            )
        return found

    # -- users ------------------------------------------------------------------------------
    async def put_user(self, user: User) -> None:
        params = (
            cql.USERS_DIRECTORY,
            user.name,
            user.password_hash,
            set(user.fleets),
            user.disabled,
        )
        await self._write(self._statement("put_user", params))

    async def get_user(self, name: str) -> User | None:
        rows = await self._query("user", (cql.USERS_DIRECTORY, name))
        return _user(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        return [_user(r) for r in await self._query("users", (cql.USERS_DIRECTORY,))]

    async def disable_user(self, name: str) -> bool:
        if await self.get_user(name) is None:
            return False
        await self._write(self._statement("disable_user", (cql.USERS_DIRECTORY, name)))
        return True

    async def end_sessions(self, name: str, at_ms: int) -> bool:
        if await self.get_user(name) is None:  # an UPDATE would make a row of the name alone
            return False
        params = (at_ms * 1000, at_ms, cql.USERS_DIRECTORY, name)
        await self._write(self._statement("end_sessions", params))
        return True

    async def note_login_failure(self, scope: str, at_ms: int, *, window_s: int) -> None:
        await self._login_event(scope, at_ms, window_s, cleared=False)

    async def clear_login_failures(self, scope: str, at_ms: int, *, window_s: int) -> None:
        await self._login_event(scope, at_ms, window_s, cleared=True)

    async def _login_event(self, scope: str, at_ms: int, window_s: int, *, cleared: bool) -> None:
        # A TTL of 0 would keep the row for ever.
        params = (scope, at_ms, uuid.uuid4().hex, cleared, max(1, window_s))
        await self._write(self._statement("login_event", params))

    async def login_failures(self, scope: str, *, since_ms: int, limit: int) -> list[int]:
        rows = await self._query("login_events", (scope, since_ms, limit), limit=limit)
        return failures_since_clearing((to_ms(r.at), bool(r.cleared)) for r in rows)

    # -- notification channels --------------------------------------------------------------
    async def put_channel(self, channel: Channel) -> None:
        params = (
            channel.fleet,
            channel.channel_id,
            channel.kind,
            channel.target,
            channel.format,
            channel.secret_box,
            set(channel.alert_types),
            set(channel.severities),
            channel.created_at,
        )
        await self._write(self._statement("put_channel", params))

    async def channels(self, fleet: str) -> list[Channel]:
        return [
            Channel(
                fleet=fleet,
                channel_id=r.channel_id,
                kind=r.kind,
                target=r.target,
                format=r.format,
                secret_box=r.secret_box or "",
                alert_types=sorted(r.alert_types or ()),
                severities=sorted(r.severities or ()),
                created_at=to_ms(r.created_at),
            )
            for r in await self._query("channels", (fleet,))
        ]

    async def remove_channel(self, fleet: str, channel_id: str) -> bool:
        if not await self._query("channel", (fleet, channel_id)):
            return False
        await self._write(self._statement("remove_channel", (fleet, channel_id)))
        return True

    # -- flights ----------------------------------------------------------------------------
    async def write_flights(self, flights: Sequence[Flight]) -> None:
        await self._write_all(self._statement("upsert_flight", _flight_row(f)) for f in flights)

    async def flights(
        self,
        fleet: str,
        drone_id: str,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
    ) -> list[Flight]:
        since = 0 if since_ms is None else since_ms
        until = record.MAX_EPOCH_MS + 1 if until_ms is None else until_ms
        rows = await self._query("flights", (fleet, drone_id, since, until, limit), limit=limit)
        return [_flight(fleet, drone_id, r) for r in rows]

    async def flight(self, fleet: str, flight_id: str) -> Flight | None:
        key = parse_flight_id(fleet, flight_id)
        if key is None:
            return None
        rows = await self._query("flight", (fleet, *key))
        return _flight(fleet, key[0], rows[0]) if rows else None

    async def purge_expired(self) -> int:
        """Cassandra expires rows by TTL itself."""
        return 0


class _Pipeline:
    """Runs write statements with at most ``window`` driver futures in flight.

    The driver completes requests on its I/O thread. Rather than a task, a semaphore and a
    loop wake-up per request, its callbacks only count under a lock; the loop is woken once
    when half the window has drained (to send more) or when everything is done. The first
    error is raised after every request sent has finished, so none is left running."""

    def __init__(self, window: int) -> None:
        self._window = window
        self._lock = threading.Lock()
        self._pending = 0
        self._error: BaseException | None = None
        self._waiter: tuple[int, asyncio.Future[None]] | None = None
        self._loop = asyncio.get_running_loop()

    async def run(self, session: Any, statements: Iterable[Any]) -> None:
        refill = self._window // 2
        for statement in statements:
            if self._pending >= self._window:
                await self._drained(refill)
            if self._error is not None:
                break
            with self._lock:
                self._pending += 1
            try:
                response = session.execute_async(statement)
            except Exception as exc:  # refused before it was sent: no callback will come
                self._failed(exc)
                break
            response.add_callbacks(self._done, self._failed)
        await self._drained(0)
        if self._error is not None:
            raise self._error

    async def _drained(self, level: int) -> None:
        future = self._loop.create_future()
        with self._lock:
            if self._pending <= level:
                return
            self._waiter = (level, future)
        await future

    def _done(self, _rows: Any = None) -> None:
        with self._lock:
            self._pending -= 1
            waiter = self._waiter
            if waiter is None or self._pending > waiter[0]:
                return
            self._waiter = None
        # RuntimeError: the loop closed while the request was in flight.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_settle, waiter[1])

    def _failed(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._done()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _flight_row(f: Flight) -> tuple[Any, ...]:
    return (
        f.fleet, f.drone_id, f.start, f.end, f.duration_ms, f.ended_by, f.distance_m,
        f.max_alt_m, f.max_speed_mps, f.battery_start_pct, f.battery_end_pct,
        _unset(f.battery_used_pct_per_min), f.points, f.alert_ids,
    )  # fmt: skip


def _flight(fleet: str, drone_id: str, r: Any) -> Flight:
    start = to_ms(r.started_at)
    return Flight(
        fleet=fleet,
        drone_id=drone_id,
        flight_id=flight_id(fleet, drone_id, start),
        start=start,
        end=to_ms(r.ended_at),
        duration_ms=r.duration_ms,
        ended_by=r.ended_by,
        distance_m=r.distance_m,
        max_alt_m=r.max_alt_m,
        max_speed_mps=r.max_speed_mps,
        battery_start_pct=r.battery_start_pct,
        battery_end_pct=r.battery_end_pct,
        battery_used_pct_per_min=r.battery_used_pct_per_min,
        points=r.points,
        alert_ids=list(r.alert_ids or ()),
    )


async def _guard(pending: Awaitable[Any], settings: Settings) -> Any:
    """Await a driver request, turning 'the cluster cannot answer now' (no replica reachable,
    too few replicas alive or answering in time) into StoreUnavailable."""
    try:
        return await pending
    except (NoHostAvailable, OperationTimedOut, Unavailable, ReadTimeout, WriteTimeout) as exc:
        raise StoreUnavailable(f"Cassandra at {where(settings)} did not answer: {exc}") from exc


def _alert(fleet: str, row: Any, drone_id: str, *, alert_id: str | None = None) -> Alert:
    return Alert(
        fleet=fleet,
        drone_id=drone_id,
        alert_id=alert_id if alert_id is not None else row.alert_id,
        type=row.type,
        severity=row.severity,
        raised_at=to_ms(row.raised_at),
        detail=row.detail or "",
        cleared_at=_opt_ms(row.cleared_at),
        acknowledged_at=_opt_ms(row.acknowledged_at),
        acknowledged_by=row.acknowledged_by,
    )


def _user(row: Any) -> User:
    return User(
        name=row.name,
        password_hash=row.password_hash,
        fleets=sorted(row.fleets or ()),
        disabled=bool(row.disabled),
        sessions_valid_after=_opt_ms(row.sessions_valid_after) or 0,
    )
