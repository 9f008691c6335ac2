"""The Cassandra adapter's CQL, checked as text against the rules a real cluster enforces.

The tables come from the migration files (what `dronetrack db migrate` creates); the statements
from ``dronetrack.store.cql`` (everything the adapter prepares). A statement that a cluster would
reject, or would only run with ALLOW FILTERING, fails here without a cluster.
"""

from __future__ import annotations

import re

import pytest
from cassandra.metadata import cql_keywords_reserved

from dronetrack.settings import Settings
from dronetrack.store import Retention, cql, migrations
from dronetrack.store.cassandra_schema import (
    create_keyspace_cql,
    retention_cql,
    template_params,
)
from tests.cql_model import Table, add_column, conditions, parse_table, split_top

RETENTION = Retention(track_s=604_800, alerts_s=7_776_000, stats_s=7_776_000)
TIME_SERIES = {"track_points", "fleet_stats"}


def tables() -> dict[str, Table]:
    statements = [cql.CREATE_MIGRATIONS_TABLE]
    for migration in migrations.load("cassandra"):
        statements += migration.statements(template_params(RETENTION))
    found = {}
    for s in statements:
        if s.startswith("CREATE TABLE"):
            t = parse_table(s)
            assert t.name not in found, f"{t.name} created twice"
            found[t.name] = t
        elif s.startswith("ALTER TABLE"):
            add_column(found, s)
    return found


TABLES = tables()


def check_restrictions(table: Table, conds: list[tuple[str, str]], name: str) -> None:
    restricted = {c for c, _ in conds}
    for col, _ in conds:
        assert col in table.primary, (
            f"{name}: {col} is not part of {table.name}'s primary key: a cluster would demand "
            "ALLOW FILTERING or an index"
        )
    for col in table.partition:
        assert (col, "=") in conds or (col, "IN") in conds, (
            f"{name}: partition key column {col} of {table.name} is not restricted by '='"
        )
    # Clustering restrictions: a prefix of the clustering columns, only the last one a range.
    restricted_clustering = [c for c in table.clustering if c in restricted]
    assert restricted_clustering == table.clustering[: len(restricted_clustering)], (
        f"{name}: clustering columns of {table.name} restricted out of order"
    )
    for col in restricted_clustering[:-1]:
        assert all(op == "=" for c, op in conds if c == col), (
            f"{name}: a range on {col} must be on the last restricted clustering column"
        )


def select_parts(statement: str) -> re.Match[str]:
    m = re.fullmatch(
        r"SELECT (?P<cols>.+?) FROM (?P<table>\w+) WHERE (?P<where>.+?)"
        r"(?: ORDER BY (?P<order>\w+(?: (?:ASC|DESC))?(?:, \w+(?: (?:ASC|DESC))?)*))?"
        r"(?: LIMIT (?:\?|\d+))?",
        statement,
    )
    assert m, f"not a SELECT this test understands: {statement}"
    return m


SELECTS = {n: s for n, s in cql.STATEMENTS.items() if s.startswith("SELECT")}
INSERTS = {n: s for n, s in cql.STATEMENTS.items() if s.startswith("INSERT")}
UPDATES = {n: s for n, s in cql.STATEMENTS.items() if s.startswith("UPDATE")}
DELETES = {n: s for n, s in cql.STATEMENTS.items() if s.startswith("DELETE")}


def test_every_statement_is_a_select_insert_update_or_delete() -> None:
    assert set(cql.STATEMENTS) == set(SELECTS) | set(INSERTS) | set(UPDATES) | set(DELETES)


@pytest.mark.parametrize("name", sorted(DELETES))
def test_deletes_remove_one_whole_row_by_its_primary_key(name: str) -> None:
    m = re.fullmatch(r"DELETE FROM (\w+) WHERE (.+)", DELETES[name])
    assert m, f"not a DELETE this test understands (whole rows only): {DELETES[name]}"
    table = TABLES[m[1]]
    conds = conditions(m[2])
    assert sorted(c for c, _ in conds) == sorted(table.primary), (
        f"{name}: a DELETE must name the whole primary key of {table.name} (no range tombstones)"
    )
    assert {op for _, op in conds} == {"="}
    assert table.name not in TIME_SERIES, "time series expire by TTL, never by DELETE"


@pytest.mark.parametrize("name", sorted(cql.STATEMENTS))
def test_no_allow_filtering_and_no_lightweight_transactions(name: str) -> None:
    text = cql.STATEMENTS[name].upper()
    assert "ALLOW FILTERING" not in text
    assert not re.search(r"\bIF\b", text), "an LWT is not idempotent and costs four round trips"
    assert "TOKEN(" not in text


@pytest.mark.parametrize("name", sorted(SELECTS))
def test_selects_restrict_the_full_partition_key(name: str) -> None:
    m = select_parts(SELECTS[name])
    table = TABLES[m["table"]]
    check_restrictions(table, conditions(m["where"]), name)
    for col in split_top(m["cols"]):
        fn = re.fullmatch(r"(TTL|WRITETIME)\((\w+)\)", col)
        if fn:
            assert fn[2] in table.columns, f"{name}: no column {fn[2]}"
            assert fn[2] not in table.primary, f"{name}: {fn[1]}() of a primary key column"
            assert not table.columns[fn[2]].startswith(("set", "list", "map")), (
                f"{name}: {fn[1]}() of a collection"
            )
        else:
            assert col in table.columns, f"{name}: {table.name} has no column {col}"


@pytest.mark.parametrize("name", sorted(SELECTS))
def test_order_by_matches_the_clustering_order(name: str) -> None:
    m = select_parts(SELECTS[name])
    if not m["order"]:
        return
    table = TABLES[m["table"]]
    asked = [[*p.split(), "ASC"][:2] for p in m["order"].split(", ")]
    cols = [c for c, _ in asked]
    assert cols == table.clustering[: len(cols)], f"{name}: ORDER BY must follow clustering columns"
    declared = [table.order.get(c, "ASC") for c in cols]
    wanted = [d for _, d in asked]
    flipped = ["ASC" if d == "DESC" else "DESC" for d in declared]
    assert wanted in (declared, flipped), f"{name}: ORDER BY {wanted} vs clustering {declared}"


def _using(statement: str) -> str:
    m = re.search(r"USING (.+?)(?: SET |$)", statement)
    return m[1] if m else ""


@pytest.mark.parametrize("name", sorted(INSERTS))
def test_inserts_name_the_whole_primary_key_and_bind_every_value(name: str) -> None:
    m = re.fullmatch(
        r"INSERT INTO (\w+) \(([^)]*)\) VALUES \(([^)]*)\)(?: USING (?:TTL \?|TIMESTAMP \?)"
        r"(?: AND (?:TTL \?|TIMESTAMP \?))?)?",
        INSERTS[name],
    )
    assert m, f"not an INSERT this test understands: {INSERTS[name]}"
    table = TABLES[m[1]]
    cols = [c.strip() for c in m[2].split(",")]
    values = [v.strip() for v in m[3].split(",")]
    assert len(cols) == len(values), f"{name}: {len(cols)} columns, {len(values)} values"
    assert set(values) == {"?"}, f"{name}: bind every value"
    assert len(set(cols)) == len(cols)
    for col in cols:
        assert col in table.columns, f"{name}: {table.name} has no column {col}"
    missing = set(table.primary) - set(cols)
    assert not missing, f"{name}: primary key columns {missing} are missing"


@pytest.mark.parametrize("name", sorted(UPDATES))
def test_updates_name_the_whole_primary_key_and_only_set_values(name: str) -> None:
    m = re.fullmatch(
        r"UPDATE (\w+)(?: USING (?:TTL \?|TIMESTAMP \?)(?: AND (?:TTL \?|TIMESTAMP \?))?)?"
        r" SET (.+?) WHERE (.+)",
        UPDATES[name],
    )
    assert m, f"not an UPDATE this test understands: {UPDATES[name]}"
    table = TABLES[m[1]]
    for assignment in m[2].split(","):
        col, _, value = (p.strip() for p in assignment.partition("="))
        assert col in table.columns, f"{name}: {table.name} has no column {col}"
        assert col not in table.primary, f"{name}: cannot set primary key column {col}"
        assert value in ("?", "true", "false"), (
            f"{name}: {col} = {value} is not idempotent (counter or collection append)"
        )
    conds = conditions(m[3])
    assert sorted(c for c, _ in conds) == sorted(table.primary), (
        f"{name}: an UPDATE must name the whole primary key of {table.name}"
    )
    assert {op for _, op in conds} == {"="}


@pytest.mark.parametrize("name", sorted({**INSERTS, **UPDATES}))
def test_time_series_tables_keep_server_write_times(name: str) -> None:
    """TWCS buckets SSTables by write time: client timestamps would scatter them."""
    table = re.search(r"(?:INTO|UPDATE) (\w+)", cql.STATEMENTS[name])
    assert table
    if table[1] in TIME_SERIES:
        assert "TIMESTAMP" not in _using(cql.STATEMENTS[name])


@pytest.mark.parametrize("table", sorted(TABLES.values(), key=lambda t: t.name), ids=str)
def test_tables_are_well_formed(table: Table) -> None:
    for name in table.columns:
        assert name.lower() not in cql_keywords_reserved, f"{table.name}.{name} is reserved"
    assert set(table.primary) <= set(table.columns)
    assert not any(table.columns[c].startswith(("set", "list", "map")) for c in table.primary)
    assert "counter" not in table.columns.values(), "counters cannot be written idempotently"
    if table.clustering:
        assert list(table.order) == table.clustering, (
            f"{table.name}: CLUSTERING ORDER BY must list the clustering columns in key order"
        )
    if table.name in TIME_SERIES:
        assert "'class': 'TimeWindowCompactionStrategy'" in table.options
        assert re.search(r"default_time_to_live = \d+", table.options)
        assert "day" in table.partition, "time series are bucketed by day"


def test_time_series_partitions_are_bucketed_by_day_and_newest_first() -> None:
    track = TABLES["track_points"]
    assert track.partition == ["fleet", "drone_id", "day"]
    assert track.order == {"ts": "DESC"}
    assert TABLES["fleet_stats"].partition == ["fleet", "day"]
    assert TABLES["alerts_by_fleet_day"].partition == ["fleet", "day"]
    assert TABLES["alerts_by_drone"].partition == ["fleet", "drone_id"]
    assert TABLES["latest_state"].partition == ["fleet"]


def test_templates_fill_the_settings_retention() -> None:
    text = " ".join(
        s for m in migrations.load("cassandra") for s in m.statements(template_params(RETENTION))
    )
    assert "default_time_to_live = 604800" in text
    assert "${" not in text
    for statement in retention_cql(RETENTION):
        assert statement.startswith("ALTER TABLE ")
        assert re.match(r"ALTER TABLE (\w+)", statement)[1] in TABLES  # type: ignore[index]


def test_keyspace_replication_comes_from_settings() -> None:
    nts = create_keyspace_cql(
        Settings(cassandra_local_dc="eu-west", cassandra_replication_factor=3)
    )
    assert nts == (
        "CREATE KEYSPACE IF NOT EXISTS dronetrack WITH replication ="
        " {'class': 'NetworkTopologyStrategy', 'eu-west': 3} AND durable_writes = true"
    )
    simple = create_keyspace_cql(
        Settings(cassandra_replication_strategy="SimpleStrategy", cassandra_replication_factor=1)
    )
    assert "{'class': 'SimpleStrategy', 'replication_factor': 1}" in simple
