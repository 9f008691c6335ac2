"""`dronetrack db migrate` for Cassandra, over the in-process stand-in (cassandra_standin.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dronetrack import cli
from dronetrack.settings import Settings
from dronetrack.store import SchemaOutdated, cassandra_schema, migrations
from dronetrack.store.cassandra import CassandraStore
from tests.cassandra_standin import StandinCluster, install

SETTINGS = Settings(store="cassandra", cassandra_contact_points="standin")


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandinCluster]:
    standin = install(monkeypatch)
    yield standin
    standin.io.shutdown(wait=True)


def test_migrate_is_idempotent_and_records_the_version(cluster: StandinCluster) -> None:
    latest = migrations.latest_version("cassandra")
    assert cassandra_schema.migrate(SETTINGS) == (0, latest)
    assert cassandra_schema.migrate(SETTINGS) == (latest, latest)
    assert cassandra_schema.version(SETTINGS) == latest
    assert cluster.ttl["track_points"] == SETTINGS.store_track_ttl_s
    assert list(cluster.metadata.keyspaces) == ["dronetrack"], "migrate creates the keyspace"
    assert cassandra_schema.create_keyspace(SETTINGS) is None, "an existing one is left alone"


def test_migrate_applies_changed_retention_to_existing_tables(cluster: StandinCluster) -> None:
    cassandra_schema.migrate(SETTINGS)
    cassandra_schema.migrate(SETTINGS.replace(store_track_ttl_s=86_400, store_alerts_ttl_s=0))
    assert cluster.ttl["track_points"] == 86_400
    assert cluster.ttl["alerts_by_drone"] == 0


async def test_the_adapter_refuses_an_unmigrated_keyspace(cluster: StandinCluster) -> None:
    with pytest.raises(SchemaOutdated, match="dronetrack db migrate"):
        await CassandraStore(SETTINGS).open()
    cassandra_schema.migrate(SETTINGS)
    store = CassandraStore(SETTINGS)
    await store.open()
    await store.ping()
    await store.close()


def test_a_migration_interrupted_after_adding_a_column_completes_on_the_next_run(
    cluster: StandinCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v2 adds a column (no IF NOT EXISTS before Cassandra 5.0): a run that added it but died
    before recording v2 must not leave `db migrate` failing for ever."""
    recorded = cassandra_schema._execute

    def die_recording_v2(
        session: object, keyspace: str, name: str, params: tuple[object, ...]
    ) -> object:
        if name == "record_migration" and params[1] == 2:
            raise ConnectionError("the migration job was killed")
        return recorded(session, keyspace, name, params)  # type: ignore[arg-type]

    monkeypatch.setattr(cassandra_schema, "_execute", die_recording_v2)
    with pytest.raises(ConnectionError):
        cassandra_schema.migrate(SETTINGS)
    assert "sessions_valid_after" in cluster.tables["users"].columns
    monkeypatch.setattr(cassandra_schema, "_execute", recorded)
    assert cassandra_schema.migrate(SETTINGS) == (1, migrations.latest_version("cassandra"))


async def test_a_missing_keyspace_says_to_run_migrate(cluster: StandinCluster) -> None:
    # The driver reports it as NoHostAvailable("... using keyspace '...'", [addresses]).
    with pytest.raises(SchemaOutdated, match=r"keyspace .dronetrack. does not exist.*db migrate"):
        await CassandraStore(SETTINGS).open()
    with pytest.raises(SchemaOutdated, match="db migrate"):
        cassandra_schema.version(SETTINGS)


def db(argv: list[str], monkeypatch: pytest.MonkeyPatch, **env: str) -> int:
    monkeypatch.setenv("DRONETRACK_STORE", "cassandra")
    monkeypatch.setenv("DRONETRACK_CASSANDRA_CONTACT_POINTS", "standin")
    for name, value in env.items():
        monkeypatch.setenv(f"DRONETRACK_{name}", value)
    return cli.main(["db", *argv])


def test_create_keyspace_refuses_more_replicas_than_live_nodes_unless_forced(
    cluster: StandinCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.nodes = 1
    assert db(["create-keyspace"], monkeypatch) == 1
    assert db(["migrate"], monkeypatch) == 1
    err = capsys.readouterr().err
    assert (
        "replication factor 3 is more than the 1 live node(s) of data centre 'datacenter1'" in err
    )
    assert "DRONETRACK_CASSANDRA_REPLICATION_FACTOR=1" in err
    assert "--force" in err
    assert cluster.metadata.keyspaces == {}
    cluster.nodes = 3
    assert db(["create-keyspace"], monkeypatch) == 0
    assert list(cluster.metadata.keyspaces) == ["dronetrack"]


def test_too_few_live_replicas_is_a_clear_message_not_a_traceback(
    cluster: StandinCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.nodes = 1
    assert db(["create-keyspace", "--force"], monkeypatch) == 0
    capsys.readouterr()
    assert db(["migrate"], monkeypatch) == 1
    assert db(["version"], monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.count("dronetrack: Cassandra could not reach enough replicas") == 2
    assert "LOCAL_QUORUM needs 2 live replicas, 1 alive" in err
    assert "Traceback" not in err


def test_a_one_node_cluster_migrates_with_replication_factor_one(
    cluster: StandinCluster, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster.nodes = 1
    assert db(["migrate"], monkeypatch, CASSANDRA_REPLICATION_FACTOR="1") == 0
    assert db(["version"], monkeypatch, CASSANDRA_REPLICATION_FACTOR="1") == 0
    latest = migrations.latest_version("cassandra")
    assert f"version {latest} of {latest}" in capsys.readouterr().out
