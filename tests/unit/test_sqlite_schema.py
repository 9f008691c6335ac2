"""SQLite schema versions: an older file is brought forward on open, keeping its rows."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from dronetrack.store import migrations
from dronetrack.store.sqlite import SqliteStore, migrate, schema_version


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    for kind in ("sqlite", "cassandra"):
        found = migrations.load(kind)  # type: ignore[arg-type]
        assert [m.version for m in found] == list(range(1, len(found) + 1))


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
