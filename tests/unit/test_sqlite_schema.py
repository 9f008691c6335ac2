"""SQLite schema versions: an older file is brought forward on open, keeping its rows."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from dronetrack.store import migrations
from dronetrack.store.sqlite import SqliteStore, migrate, schema_version


def test_migrations_are_numbered_uniquely_in_order_from_one() -> None:
    for kind in ("sqlite", "cassandra"):
        found = migrations.load(kind)  # type: ignore[arg-type]
        versions = [m.version for m in found]
        assert versions[0] == 1
        assert versions == sorted(set(versions))
        assert migrations.latest_version(kind) == versions[-1]  # type: ignore[arg-type]


def test_a_gap_in_the_numbers_is_allowed_and_applied_by_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Numbers are reserved as changes are planned, so 0005 may land before 0003."""
    fake = [
        migrations.Migration(1, "a", "CREATE TABLE a (x INTEGER);"),
        migrations.Migration(2, "b", "CREATE TABLE b (x INTEGER);"),
        migrations.Migration(5, "e", "CREATE TABLE e (x INTEGER);"),
    ]
    monkeypatch.setattr(migrations, "load", lambda kind: fake)
    db = sqlite3.connect(tmp_path / "gap.sqlite3", isolation_level=None)
    try:
        db.execute("CREATE TABLE a (x INTEGER)")
        db.execute("PRAGMA user_version = 1")
        assert migrate(db) == (1, 5)
        assert schema_version(db) == 5
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables == {"a", "b", "e"}
        assert migrate(db) == (5, 5)
    finally:
        db.close()


def test_a_repeated_number_is_refused() -> None:
    with pytest.raises(RuntimeError, match=r"sqlite migrations: version 1 .*twice"):
        migrations.check_versions("sqlite", [1, 1])


def test_statements_split_and_drop_comments() -> None:
    text = "-- a comment\nCREATE TABLE a (x INT, -- inline\n y INT);\nSELECT 1;\n"
    assert migrations.split_statements(text) == ["CREATE TABLE a (x INT, y INT)", "SELECT 1"]


async def test_a_version_one_file_is_migrated_on_open_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for statement in migrations.load("sqlite")[0].statements():
        db.execute(statement)
    db.execute(
        "INSERT INTO track_points VALUES ('f1', 'd1', 1000, 47.0, 8.0, 100.0, 1.0, 0.0, 50.0, 1)"
    )
    db.close()

    store = SqliteStore(path)
    await store.open()
    try:
        [point] = await store.track("f1", "d1")
        assert (point.ts, point.seq) == (1000, 1)
    finally:
        await store.close()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        assert schema_version(db) == migrations.latest_version("sqlite")
        assert migrate(db) == (migrations.latest_version("sqlite"),) * 2, "idempotent"
    finally:
        db.close()


async def test_stores_opening_one_new_file_at_once_migrate_it_once(tmp_path: Path) -> None:
    stores = [SqliteStore(tmp_path / "new.sqlite3") for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    try:
        for s in stores:
            await s.ping()
    finally:
        await asyncio.gather(*(s.close() for s in stores))
