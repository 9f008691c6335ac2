"""The store contract runs against every adapter the machine can reach: SQLite always,
Cassandra when ``DRONETRACK_CASSANDRA_CONTACT_POINTS`` names a cluster. ``cassandra-standin``
runs the Cassandra adapter's own code over an in-process stand-in for the cluster (see
tests/cassandra_standin.py): it catches the adapter's mistakes, not the cluster's behaviour."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from dronetrack.settings import Settings
from dronetrack.store import Retention, Store, migrations
from dronetrack.store.sqlite import SqliteStore

StoreFactory = Callable[..., Awaitable[Store]]

ENABLE_CASSANDRA = (
    "Cassandra contract run skipped: set DRONETRACK_CASSANDRA_CONTACT_POINTS=host[,host...] "
    "(plus DRONETRACK_CASSANDRA_LOCAL_DC and, if needed, _USERNAME/_PASSWORD/_TLS) to run it; "
    "it creates a keyspace dronetrack_contract_<random> with replication factor 1 and drops it"
)
# Every table the migrations create, emptied between tests: a table missing from a written-out
# list kept one test's rows for the next (flights and failed logins did, on a real cluster).
CASSANDRA_TABLES = tuple(
    re.findall(
        r"CREATE TABLE IF NOT EXISTS (\w+)",
        "".join(m.text for m in migrations.load("cassandra")),
    )
)


@pytest.fixture(scope="session")
def cassandra_settings() -> Iterator[Settings]:
    settings = Settings.from_env()
    if not settings.cassandra_contact_points:
        pytest.skip(ENABLE_CASSANDRA)
    from dronetrack.store import cassandra_schema

    settings = settings.replace(
        store="cassandra", cassandra_keyspace=f"dronetrack_contract_{secrets.token_hex(4)}"
    )
    if "DRONETRACK_CASSANDRA_REPLICATION_FACTOR" not in os.environ:
        settings = settings.replace(cassandra_replication_factor=1)
    cassandra_schema.create_keyspace(settings)
    cassandra_schema.migrate(settings)
    yield settings
    _cassandra_execute(settings, f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}")


def _cassandra_execute(settings: Settings, *statements: str) -> None:
    from dronetrack.store.cassandra_cluster import build_cluster, connect

    cluster = build_cluster(settings)
    session = connect(cluster, settings, None)
    try:
        for statement in statements:
            session.execute(statement, timeout=60)
    finally:
        cluster.shutdown()


@pytest.fixture
def standin_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    from dronetrack.store import cassandra_schema
    from tests.cassandra_standin import install

    cluster = install(monkeypatch)
    settings = Settings(store="cassandra", cassandra_contact_points="standin")
    cassandra_schema.migrate(settings)
    yield settings
    cluster.io.shutdown(wait=True)


@pytest.fixture(params=["sqlite", "cassandra-standin", "cassandra"])
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    """Opens stores over the same data (as two processes would), all closed after the test."""
    opened: list[Store] = []
    if request.param == "cassandra":
        settings: Settings = request.getfixturevalue("cassandra_settings")
        keyspace = settings.cassandra_keyspace
        _cassandra_execute(settings, *(f"TRUNCATE {keyspace}.{t}" for t in CASSANDRA_TABLES))
    elif request.param == "cassandra-standin":
        settings = request.getfixturevalue("standin_settings")

    async def factory(retention: Retention | None = None) -> Store:
        adapter: Store
        if request.param == "sqlite":
            adapter = SqliteStore(tmp_path / "contract.sqlite3", retention=retention)
        else:
            from dronetrack.store.cassandra import CassandraStore

            adapter = CassandraStore(settings, retention=retention)
        await adapter.open()
        opened.append(adapter)
        return adapter

    try:
        yield factory
    finally:
        for adapter in opened:
            await adapter.close()


@pytest.fixture
async def store(store_factory: StoreFactory) -> Store:
    return await store_factory()
