"""An in-process stand-in for a Cassandra session, for running the Cassandra adapter's own logic
(statement binding, day iteration, paging, the asyncio bridge, last-write-wins timestamps, TTLs)
on a machine without a cluster. It is not Cassandra: the contract run against a real cluster
(DRONETRACK_CASSANDRA_CONTACT_POINTS) is the authority.

What it keeps real: statements are the driver's own PreparedStatement/BoundStatement/
BatchStatement, so every value is serialised by the driver's types exactly as it would be sent,
and decoded back with the same types, so rows hold what the driver would return (naive UTC
datetimes, ``Date``, sorted sets). Results arrive on another thread, as the driver's do.
What it models: the CQL subset the adapter uses (checked against real rules in test_cql.py),
per-cell last-write-wins with write timestamps, TTLs with table defaults, row liveness,
clustering order, LIMIT and paging by fetch_size.
"""

from __future__ import annotations

import collections
import datetime
import itertools
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from cassandra import ConsistencyLevel, InvalidRequest, Unavailable, cqltypes
from cassandra.cluster import NoHostAvailable
from cassandra.protocol import ColumnMetadata
from cassandra.query import UNSET_VALUE, BatchStatement, BoundStatement, PreparedStatement
from cassandra.util import Date

from tests.cql_model import Table, add_column, conditions, parse_table

PROTOCOL = 4
_TYPES: dict[str, Any] = {
    "text": cqltypes.UTF8Type,
    "timestamp": cqltypes.DateType,
    "date": cqltypes.SimpleDateType,
    "double": cqltypes.DoubleType,
    "bigint": cqltypes.LongType,
    "int": cqltypes.Int32Type,
    "boolean": cqltypes.BooleanType,
    "set<text>": cqltypes.SetType.apply_parameters([cqltypes.UTF8Type]),
    "list<text>": cqltypes.ListType.apply_parameters([cqltypes.UTF8Type]),
}
_MARKERS = {
    "TTL": ("[ttl]", "int"),
    "TIMESTAMP": ("[timestamp]", "bigint"),
    "LIMIT": ("[limit]", "int"),
}


def _key(value: Any) -> Any:
    return value.days_from_epoch if isinstance(value, Date) else value


@dataclass
class _Cell:
    value: Any
    ts: int
    expires: float | None

    def live(self, now: float) -> bool:
        return self.expires is None or self.expires > now


@dataclass
class _Row:
    marker: _Cell | None = None
    cells: dict[str, _Cell] = field(default_factory=dict)


class _Result(list[Any]):
    def one(self) -> Any:
        return self[0] if self else None


class StandinCluster:
    """Holds the data; ``connect`` hands out sessions over it, as a cluster would."""

    def __init__(self) -> None:
        self.tables: dict[str, Table] = {}
        self.ttl: dict[str, int] = {}
        self.data: dict[str, dict[tuple[Any, ...], dict[tuple[Any, ...], _Row]]] = {}
        self.lock = threading.Lock()
        self.ids = itertools.count()
        self.prepared: dict[bytes, PreparedStatement] = {}
        self.io = ThreadPoolExecutor(2, thread_name_prefix="standin-io")
        self.metadata = SimpleNamespace(keyspaces={}, all_hosts=self.hosts)
        # Live nodes of the one data centre (as many as the default replication factor);
        # each keyspace's replication factor.
        self.nodes = 3
        self.replication: dict[str, int] = {}
        self.requests = 0

    def hosts(self) -> list[Any]:
        return [
            SimpleNamespace(address=f"127.0.0.{i + 1}", datacenter="datacenter1", is_up=True)
            for i in range(self.nodes)
        ]

    def check_replicas(self, keyspace: str, level: int | None) -> None:
        """Raise Unavailable as a coordinator does when too few replicas are alive for the
        consistency level (LOCAL_QUORUM, the settings' default, when the statement sets none)."""
        factor = self.replication.get(keyspace, 1)
        level = ConsistencyLevel.LOCAL_QUORUM if level is None else level
        required = {
            ConsistencyLevel.ONE: 1,
            ConsistencyLevel.LOCAL_ONE: 1,
            ConsistencyLevel.ALL: factor,
        }.get(level, factor // 2 + 1)
        alive = min(self.nodes, factor)
        if alive < required:
            name = ConsistencyLevel.value_to_name[level]
            raise Unavailable(
                f'Error from server: code=1000 [Unavailable exception] message="Cannot achieve'
                f" consistency level {name}\" info={{'consistency': '{name}',"
                f" 'required_replicas': {required}, 'alive_replicas': {alive}}}",
                consistency=level,
                required_replicas=required,
                alive_replicas=alive,
            )

    def session(self) -> StandinSession:
        return StandinSession(self)

    def connect(self, keyspace: str | None = None) -> StandinSession:
        """As ``Cluster.connect``: a session bound to a keyspace that does not exist fails on
        every host, reported as the driver does (NoHostAvailable with a list of addresses)."""
        if keyspace is not None and keyspace not in self.metadata.keyspaces:
            raise NoHostAvailable(
                f"Unable to connect to any servers using keyspace '{keyspace}'", ["127.0.0.1"]
            )
        return self.session()

    def shutdown(self) -> None:
        """Sessions come and go; the data (and its I/O thread) stays for the next one."""

    # -- statements -----------------------------------------------------------------------
    def prepare(self, qualified: str) -> PreparedStatement:
        keyspace, text = self.unqualify(qualified)
        if _table_name(text) not in self.tables:
            raise InvalidRequest(f"unconfigured table {_table_name(text)}")  # as the server says
        table = self.tables[_table_name(text)]
        metadata = [
            ColumnMetadata("ks", table.name, name, _TYPES[type_])
            for name, type_ in _bind_columns(text, table)
        ]
        query_id = str(next(self.ids)).encode()
        statement = PreparedStatement(metadata, query_id, None, text, keyspace, PROTOCOL, [], None)
        self.prepared[query_id] = statement
        return statement

    def run(self, statement: Any) -> list[Any]:
        with self.lock:
            self.requests += 1
            if isinstance(statement, BatchStatement):
                first = statement._statements_and_parameters[0][1]
                self.check_replicas(self.prepared[first].keyspace, statement.consistency_level)
                for _, query_id, values in statement._statements_and_parameters:
                    self._run_one(self.prepared[query_id], values)
                return []
            assert isinstance(statement, BoundStatement)
            prepared = statement.prepared_statement
            self.check_replicas(prepared.keyspace, statement.consistency_level)
            assert len(statement.raw_values) == len(prepared.column_metadata), (
                f"{len(statement.raw_values)} values for {len(prepared.column_metadata)} markers:"
                f" {prepared.query_string}"
            )
            return self._run_one(prepared, statement.values)

    def _run_one(self, prepared: PreparedStatement, raw: list[Any]) -> list[Any]:
        values = [_decode(c.type, v) for v, c in zip(raw, prepared.column_metadata, strict=True)]
        text = prepared.query_string
        bound = list(zip((c.name for c in prepared.column_metadata), values, strict=True))
        table = self.tables[_table_name(text)]
        if text.startswith("SELECT"):
            return self._select(text, table, bound)
        if text.startswith("DELETE"):
            return self._delete(text, table, bound)
        return self._write(text, table, bound)

    def _delete(self, text: str, table: Table, bound: list[tuple[str, Any]]) -> list[Any]:
        """A whole-row DELETE naming the full primary key (the only kind the adapter runs)."""
        where = dict(bound)
        assert set(where) == set(table.primary), f"DELETE must name the whole key: {text}"
        partition = tuple(_key(where[c]) for c in table.partition)
        clustering = tuple(_key(where[c]) for c in table.clustering)
        self.data.get(table.name, {}).get(partition, {}).pop(clustering, None)
        return []

    def _write(self, text: str, table: Table, bound: list[tuple[str, Any]]) -> list[Any]:
        now = time.time()
        options = dict(bound)
        ttl = options.get("[ttl]", self.ttl[table.name])
        stamp = options.get("[timestamp]", time.time_ns() // 1000)
        expires = now + ttl if ttl else None
        if text.startswith("INSERT"):
            cols = dict(b for b in bound if not b[0].startswith("["))
            where, sets = cols, {c: v for c, v in cols.items() if c not in table.primary}
        else:
            set_part = re.search(r" SET (.+?) WHERE ", text)
            assert set_part
            literal = {
                c.strip(): v.strip() == "true"
                for c, _, v in (a.partition("=") for a in set_part[1].split(","))
                if v.strip() in ("true", "false")
            }
            names = [c for c, _ in bound if not c.startswith("[")]
            n_sets = len([a for a in set_part[1].split(",") if a.strip().endswith("?")])
            sets = {**dict(bound[len(bound) - len(names) :][:n_sets]), **literal}
            where = dict(bound[len(bound) - len(names) + n_sets :])
        partition = tuple(_key(where[c]) for c in table.partition)
        clustering = tuple(_key(where[c]) for c in table.clustering)
        keys = {c: where[c] for c in table.primary}
        rows = self.data.setdefault(table.name, {}).setdefault(partition, {})
        row = rows.setdefault(clustering, _Row())
        row.cells.update({f"key:{c}": _Cell(v, 0, None) for c, v in keys.items()})
        if text.startswith("INSERT") and _wins(row.marker, stamp, None):
            row.marker = _Cell(None, stamp, expires)
        for col, value in sets.items():
            if value is UNSET_VALUE:
                continue
            if _wins(row.cells.get(col), stamp, value):
                row.cells[col] = _Cell(value, stamp, expires)
        return []

    def _select(self, text: str, table: Table, bound: list[tuple[str, Any]]) -> list[Any]:
        m = re.fullmatch(
            r"SELECT (?P<cols>.+?) FROM \w+ WHERE (?P<where>.+?)(?: ORDER BY (?P<order>\w+ \w+))?"
            r"(?: LIMIT (?P<limit>\?|\d+))?",
            text,
        )
        assert m, text
        now = time.time()
        conds = conditions(m["where"])
        values = [v for c, v in bound if c != "[limit]"]
        limit = dict(bound).get("[limit]")
        if m["limit"] and m["limit"].isdigit():
            limit = int(m["limit"])
        assert limit is None or limit > 0, "Cassandra: LIMIT must be strictly positive"
        restricted = {c for c, op in conds if op == "="}
        if not set(table.partition) <= restricted or not {c for c, _ in conds} <= set(
            table.primary
        ):
            raise InvalidRequest(f"would need ALLOW FILTERING: {text}")  # as the server refuses
        equal = {c: v for (c, op), v in zip(conds, values, strict=True) if op == "="}
        partition = tuple(_key(equal[c]) for c in table.partition)
        found = []
        for clustering, row in self.data.get(table.name, {}).get(partition, {}).items():
            live = {c: cell for c, cell in row.cells.items() if cell.live(now)}
            if not (row.marker and row.marker.live(now)) and not any(
                not c.startswith("key:") for c in live
            ):
                continue
            keyvals = dict(zip(table.clustering, clustering, strict=True))
            if all(
                _compare(keyvals[c], op, _key(v))
                for (c, op), v in zip(conds, values, strict=True)
                if c in table.clustering
            ):
                found.append((clustering, row, live))
        descending = [table.order.get(c, "ASC") == "DESC" for c in table.clustering]
        # Rows come in clustering order (each column ASC or DESC as declared).
        for i in reversed(range(len(table.clustering))):
            found.sort(key=lambda r, i=i: r[0][i], reverse=descending[i])  # type: ignore[misc]
        if m["order"]:
            col, direction = m["order"].split()
            if direction != table.order.get(col, "ASC"):
                found.reverse()
        if limit is not None:
            found = found[:limit]
        names = [c.strip() for c in m["cols"].split(",")]
        Row = collections.namedtuple("Row", names, rename=True)  # type: ignore[misc]
        return [Row(*_project(names, table, live, now)) for _, _, live in found]

    def unqualify(self, text: str) -> tuple[str, str]:
        """(keyspace, statement without it). Sessions have no keyspace: a statement that does
        not name its table's keyspace is refused, as by a server without ``USE``."""
        m = re.search(r"\b(?:TABLE IF NOT EXISTS|TABLE|INTO|UPDATE|FROM) (?:(\w+)\.)?\w+", text)
        assert m, text
        if m[1] is None:
            raise InvalidRequest(f"No keyspace has been specified: {text}")  # as the server says
        if m[1] not in self.metadata.keyspaces:
            raise InvalidRequest(f"Keyspace {m[1]} does not exist")
        return m[1], text[: m.start(1)] + text[m.end(1) + 1 :]

    # -- schema -----------------------------------------------------------------------------
    def ddl(self, text: str) -> None:
        with self.lock:
            if text.startswith("CREATE KEYSPACE IF NOT EXISTS "):
                name = text.split()[5]
                self.metadata.keyspaces[name] = text
                factor = re.search(r"'(?:replication_factor|datacenter1)': (\d+)", text)
                self.replication[name] = int(factor[1]) if factor else 1
                return
            _, text = self.unqualify(text)
            if text.startswith("CREATE TABLE"):
                table = parse_table(text)
                if table.name not in self.tables:
                    self.tables[table.name] = table
                    ttl = re.search(r"default_time_to_live = (\d+)", table.options)
                    self.ttl[table.name] = int(ttl[1]) if ttl else 0
            elif re.match(r"ALTER TABLE \w+ ADD ", text):
                add_column(self.tables, text)
            elif text.startswith("ALTER TABLE"):
                m = re.match(r"ALTER TABLE (\w+) WITH default_time_to_live = (\d+)", text)
                assert m, text
                self.ttl[m[1]] = int(m[2])
            else:
                raise AssertionError(f"unexpected schema statement {text}")


def _project(names: list[str], table: Table, live: dict[str, _Cell], now: float) -> list[Any]:
    fields: list[Any] = []
    for name in names:
        ttl = re.fullmatch(r"TTL\((\w+)\)", name)
        if ttl:
            cell = live.get(ttl[1])
            fields.append(None if cell is None or cell.expires is None else int(cell.expires - now))
        elif name in table.primary:
            fields.append(live[f"key:{name}"].value)
        else:
            cell = live.get(name)
            fields.append(None if cell is None else cell.value)
    return fields


def _decode(type_: Any, raw: Any) -> Any:
    if raw is UNSET_VALUE:
        return UNSET_VALUE
    try:
        return type_.from_binary(raw, PROTOCOL)
    except OverflowError:
        # A bound past year 9999: the server compares it as a long; Python's datetime cannot.
        return datetime.datetime.max


def _wins(old: _Cell | None, stamp: int, value: Any) -> bool:
    if old is None or stamp > old.ts:
        return True
    return bool(
        stamp == old.ts and value is not None and old.value is not None and value > old.value
    )


def _compare(have: Any, op: str, want: Any) -> bool:
    return bool(
        {
            "=": have == want,
            "<": have < want,
            "<=": have <= want,
            ">": have > want,
            ">=": have >= want,
        }[op]
    )


def _table_name(text: str) -> str:
    m = re.search(r"(?:FROM|INTO|UPDATE) (\w+)", text)
    assert m, text
    return m[1]


def _bind_columns(text: str, table: Table) -> list[tuple[str, str]]:
    """(name, CQL type) of each bind marker, in order, as the server would describe them."""
    if text.startswith("INSERT"):
        m = re.match(r"INSERT INTO \w+ \(([^)]*)\)", text)
        assert m
        cols = [(c.strip(), table.columns[c.strip()]) for c in m[1].split(",")]
        return cols + [_MARKERS[w] for w in re.findall(r"(TTL|TIMESTAMP) \?", text)]
    found = []
    for m in re.finditer(r"(\w+)\s*(?:=|<=|>=|<|>)\s*\?|(TTL|TIMESTAMP|LIMIT) \?", text):
        found.append(_MARKERS[m[2]] if m[2] else (m[1], table.columns[m[1]]))
    return found


class StandinFuture:
    """The parts of the driver's ResponseFuture the adapter uses; callbacks run on another
    thread, as the driver's do."""

    def __init__(self, cluster: StandinCluster, statement: Any) -> None:
        self._cluster = cluster
        self._callbacks: list[tuple[Any, Any]] = []
        self._outcome: tuple[bool, Any] | None = None
        self._lock = threading.Lock()
        self._rows: list[Any] = []
        size = getattr(statement, "fetch_size", None)
        self._size = size if isinstance(size, int) and size > 0 else 5_000  # the driver's default
        self._pages = 0
        cluster.io.submit(self._execute, statement)

    def _execute(self, statement: Any) -> None:
        try:
            self._rows = self._cluster.run(statement)
            self._deliver((True, self._rows[: self._size]))
        except Exception as exc:  # delivered to the errback, as the driver does
            self._deliver((False, exc))

    def _deliver(self, outcome: tuple[bool, Any]) -> None:
        with self._lock:
            self._outcome = outcome
            callbacks = list(self._callbacks)
        for ok, err in callbacks:
            (ok if outcome[0] else err)(outcome[1])

    def add_callbacks(self, callback: Any, errback: Any) -> None:
        with self._lock:
            self._callbacks.append((callback, errback))
            outcome = self._outcome
        if outcome is not None:
            (callback if outcome[0] else errback)(outcome[1])

    def clear_callbacks(self) -> None:
        with self._lock:
            self._callbacks = []

    @property
    def has_more_pages(self) -> bool:
        return len(self._rows) > (self._pages + 1) * self._size

    def start_fetching_next_page(self) -> None:
        with self._lock:
            self._outcome = None
            self._pages += 1
        start = self._pages * self._size
        self._cluster.io.submit(self._deliver, (True, self._rows[start : start + self._size]))


class StandinSession:
    def __init__(self, cluster: StandinCluster) -> None:
        self.cluster = cluster

    def prepare(self, text: str) -> PreparedStatement:
        return self.cluster.prepare(text)

    def execute_async(self, statement: Any) -> StandinFuture:
        return StandinFuture(self.cluster, statement)

    def execute(self, statement: Any, params: Any = None, timeout: float | None = None) -> Any:
        ddl = ("CREATE KEYSPACE", "CREATE TABLE", "ALTER TABLE")
        if isinstance(statement, str) and statement.startswith(ddl):
            self.cluster.ddl(statement)
            return _Result()
        if isinstance(statement, str):
            # As the driver: a plain string is a simple statement, which takes %s, not ?.
            assert "?" not in statement, f"prepare a statement with ? markers: {statement}"
            raise AssertionError(f"the adapter sends no unprepared statements: {statement}")
        if isinstance(statement, PreparedStatement):
            statement = statement.bind(params or ())
        return _Result(self.cluster.run(statement))


def install(monkeypatch: Any) -> StandinCluster:
    """Route the Cassandra adapter and the schema commands to a fresh stand-in. Only the
    cluster is replaced: connecting goes through the adapter's own ``connect``."""
    from dronetrack.store import cassandra, cassandra_schema

    cluster = StandinCluster()
    monkeypatch.setattr(cassandra, "build_cluster", lambda settings: cluster)
    monkeypatch.setattr(cassandra_schema, "build_cluster", lambda settings: cluster)
    return cluster
