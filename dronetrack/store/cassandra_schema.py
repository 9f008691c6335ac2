"""Keyspace creation and schema migrations for Cassandra (``dronetrack db ...``).

Blocking on purpose: these run from the command line (or a Kubernetes Job), one at a time.
Run them from one place only: Cassandra does not serialise concurrent schema changes well.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

from cassandra import InvalidRequest

from dronetrack.settings import PREFIX, Settings, SettingsError
from dronetrack.store import Retention, cql, migrations
from dronetrack.store.cassandra_cluster import build_cluster, connect

# Lower case only: Cassandra folds unquoted names to lower case, the driver quotes others.
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_STRATEGIES = ("NetworkTopologyStrategy", "SimpleStrategy")


def keyspace_name(settings: Settings) -> str:
    name = settings.cassandra_keyspace
    if not _IDENTIFIER.match(name):
        raise SettingsError(
            f"{PREFIX}CASSANDRA_KEYSPACE={name!r}: use 1-48 lower-case letters, digits"
            " or _, starting with a letter"
        )
    return name


def create_keyspace_cql(settings: Settings) -> str:
    """CREATE KEYSPACE IF NOT EXISTS with the replication the settings ask for."""
    strategy, factor = (
        settings.cassandra_replication_strategy,
        settings.cassandra_replication_factor,
    )
    if strategy not in _STRATEGIES:
        raise SettingsError(
            f"{PREFIX}CASSANDRA_REPLICATION_STRATEGY={strategy!r}: expected one of {_STRATEGIES}"
        )
    if factor < 1:
        raise SettingsError(f"{PREFIX}CASSANDRA_REPLICATION_FACTOR={factor}: must be at least 1")
    if strategy == "SimpleStrategy":
        replication = f"'class': 'SimpleStrategy', 'replication_factor': {factor}"
    else:
        dc = settings.cassandra_local_dc.replace("'", "''")
        replication = f"'class': 'NetworkTopologyStrategy', '{dc}': {factor}"
    return (
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace_name(settings)}"
        f" WITH replication = {{{replication}}} AND durable_writes = true"
    )


def template_params(retention: Retention) -> dict[str, int]:
    """Values for the ``${name}`` placeholders of the CQL files: TTLs and TWCS windows sized
    to about 24 windows per TTL for tracks and 30 for statistics (a day when there is no TTL)."""
    return {
        "track_ttl_s": retention.track_s,
        "alerts_ttl_s": retention.alerts_s,
        "stats_ttl_s": retention.stats_s,
        "track_window_hours": max(1, math.ceil(retention.track_s / 3600 / 24))
        if retention.track_s
        else 24,
        "stats_window_days": max(1, math.ceil(retention.stats_s / 86_400 / 30))
        if retention.stats_s
        else 1,
    }


def retention_cql(retention: Retention) -> list[str]:
    """Re-assert the settings' TTLs and windows on existing tables (idempotent)."""
    p = template_params(retention)
    twcs = (
        "{'class': 'TimeWindowCompactionStrategy',"
        " 'compaction_window_unit': '%s', 'compaction_window_size': '%d'}"
    )
    return [
        f"ALTER TABLE track_points WITH default_time_to_live = {p['track_ttl_s']}"
        f" AND compaction = {twcs % ('HOURS', p['track_window_hours'])}",
        f"ALTER TABLE fleet_stats WITH default_time_to_live = {p['stats_ttl_s']}"
        f" AND compaction = {twcs % ('DAYS', p['stats_window_days'])}",
        *(
            f"ALTER TABLE {table} WITH default_time_to_live = {p['alerts_ttl_s']}"
            for table in ("alerts", "alerts_by_fleet_day", "alerts_by_drone")
        ),
    ]


def _session(settings: Settings, keyspace: str | None) -> tuple[Any, Any]:
    cluster = build_cluster(settings)
    return cluster, connect(cluster, settings, keyspace)


def live_nodes(cluster: Any, settings: Settings) -> int:
    """Nodes the driver sees up: in the local data centre for NetworkTopologyStrategy (the one
    the keyspace replicates to), anywhere for SimpleStrategy."""
    local = settings.cassandra_replication_strategy != "SimpleStrategy"
    return sum(
        1
        for host in cluster.metadata.all_hosts()
        if host.is_up is not False and (not local or host.datacenter == settings.cassandra_local_dc)
    )


def create_keyspace(settings: Settings, *, force: bool = False) -> str | None:
    """Create the keyspace if it is missing: the statement run, or None if it existed.

    An existing keyspace is left alone (its replication too) and no CREATE is even sent, so a
    role without CREATE permission on all keyspaces can run this against a prepared one.
    A replication factor above the live nodes is refused unless ``force``: the server accepts
    it with a warning, then every LOCAL_QUORUM request fails as unavailable."""
    statement = create_keyspace_cql(settings)
    cluster, session = _session(settings, None)
    try:
        if keyspace_name(settings) in cluster.metadata.keyspaces:
            return None
        factor, nodes = settings.cassandra_replication_factor, live_nodes(cluster, settings)
        if factor > nodes and not force:
            raise SettingsError(
                f"replication factor {factor} is more than the {nodes} live node(s) of data"
                f" centre {settings.cassandra_local_dc!r}: requests at QUORUM levels would fail."
                f" Set {PREFIX}CASSANDRA_REPLICATION_FACTOR={max(nodes, 1)} (or fewer), or add"
                " --force if the other nodes are on their way"
            )
        session.execute(statement)
    finally:
        cluster.shutdown()
    return statement


def _execute(session: Any, keyspace: str, name: str, params: tuple[Any, ...]) -> Any:
    """Run one of ``cql.STATEMENTS`` (``?`` markers need a prepared statement)."""
    return session.execute(session.prepare(cql.qualify(cql.STATEMENTS[name], keyspace)), params)


def _apply(session: Any, statement: str) -> None:
    """Run a schema statement; a column an earlier, interrupted run already added counts as
    added (Cassandra 4.0 has no ALTER TABLE ... ADD IF NOT EXISTS)."""
    try:
        session.execute(statement)
    except InvalidRequest as exc:
        if not (
            statement.startswith("ALTER TABLE") and "conflicts with an existing column" in str(exc)
        ):
            raise


def schema_version(session: Any, keyspace: str) -> int:
    row = _execute(session, keyspace, "schema_version", (cql.MIGRATION_SCOPE,)).one()
    return int(row.version) if row else 0


def migrate(settings: Settings, *, force: bool = False) -> tuple[int, int]:
    """Create the keyspace if it is missing, apply the pending migrations, then the retention
    settings; (version before, after).

    Each file's statements are IF NOT EXISTS, and a version is recorded only after all of its
    statements succeeded, so an interrupted run is finished by running it again."""
    retention = Retention.from_settings(settings)
    create_keyspace(settings, force=force)
    keyspace = keyspace_name(settings)
    cluster, session = _session(settings, keyspace)
    try:
        session.execute(cql.qualify(cql.CREATE_MIGRATIONS_TABLE, keyspace))
        before = schema_version(session, keyspace)
        for migration in migrations.pending("cassandra", before):
            for statement in migration.statements(template_params(retention)):
                _apply(session, cql.qualify(statement, keyspace))
            _execute(
                session,
                keyspace,
                "record_migration",
                (cql.MIGRATION_SCOPE, migration.version, migration.name, dt.datetime.now(dt.UTC)),
            )
        for statement in retention_cql(retention):
            session.execute(cql.qualify(statement, keyspace))
        return before, schema_version(session, keyspace)
    finally:
        cluster.shutdown()


def version(settings: Settings) -> int:
    keyspace = keyspace_name(settings)
    cluster, session = _session(settings, keyspace)
    try:
        session.execute(cql.qualify(cql.CREATE_MIGRATIONS_TABLE, keyspace))
        return schema_version(session, keyspace)
    finally:
        cluster.shutdown()
