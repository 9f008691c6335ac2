"""Connecting to Cassandra from settings: load balancing, consistency, retries, TLS, auth.

Shared by the store adapter and the schema commands, so both reach the cluster the same way.
"""

from __future__ import annotations

import ssl
from typing import Any

from cassandra import ConsistencyLevel, UnresolvableContactPoints
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
from cassandra.policies import DCAwareRoundRobinPolicy, RetryPolicy, TokenAwarePolicy

from dronetrack.settings import PREFIX, Settings, SettingsError
from dronetrack.store import SchemaOutdated, StoreUnavailable


class IdempotentOnlyRetryPolicy(RetryPolicy):  # type: ignore[misc]
    """Retry a failed request once, on the next replica, only if the statement says it is
    idempotent: a retried non-idempotent write could apply twice. Reads are idempotent."""

    @staticmethod
    def _idempotent(query: Any) -> bool:
        return bool(getattr(query, "is_idempotent", False))

    def on_write_timeout(  # noqa: PLR0917 - the driver calls it positionally
        self,
        query: Any,
        consistency: Any,
        write_type: Any,
        required_responses: int,
        received_responses: int,
        retry_num: int,
    ) -> tuple[int, Any]:
        if retry_num == 0 and self._idempotent(query):
            return self.RETRY_NEXT_HOST, consistency
        return self.RETHROW, None

    def on_unavailable(
        self,
        query: Any,
        consistency: Any,
        required_replicas: int,
        alive_replicas: int,
        retry_num: int,
    ) -> tuple[int, Any]:
        if retry_num == 0 and self._idempotent(query):
            return self.RETRY_NEXT_HOST, consistency
        return self.RETHROW, None

    def on_request_error(
        self, query: Any, consistency: Any, error: Exception, retry_num: int
    ) -> tuple[int, Any]:
        if retry_num == 0 and self._idempotent(query):
            return self.RETRY_NEXT_HOST, consistency
        return self.RETHROW, None


def consistency(name: str, variable: str) -> int:
    """A ConsistencyLevel from its name (``LOCAL_QUORUM``), or an error naming the variable."""
    try:
        level: int = ConsistencyLevel.name_to_value[name.upper()]
    except KeyError:
        choices = ", ".join(sorted(ConsistencyLevel.name_to_value))
        raise SettingsError(f"{PREFIX}{variable}={name!r}: expected one of {choices}") from None
    return level


def contact_points(settings: Settings) -> list[str]:
    points = [p.strip() for p in settings.cassandra_contact_points.split(",") if p.strip()]
    if not points:
        raise SettingsError(
            f"{PREFIX}CASSANDRA_CONTACT_POINTS is not set: give one or more Cassandra nodes "
            "(host[,host...]) or use the embedded store (DRONETRACK_STORE=sqlite)"
        )
    return points


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.cassandra_tls:
        return None
    context = ssl.create_default_context(cafile=settings.cassandra_tls_ca_file or None)
    context.check_hostname = settings.cassandra_tls_check_hostname
    if settings.cassandra_tls_cert_file:
        context.load_cert_chain(
            settings.cassandra_tls_cert_file, settings.cassandra_tls_key_file or None
        )
    return context


def build_cluster(settings: Settings) -> Cluster:
    """A Cluster (not yet connected) configured from settings."""
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)
        ),
        retry_policy=IdempotentOnlyRetryPolicy(),
        consistency_level=consistency(
            settings.cassandra_read_consistency, "CASSANDRA_READ_CONSISTENCY"
        ),
        request_timeout=settings.cassandra_request_timeout_s,
    )
    auth = None
    if settings.cassandra_username:
        auth = PlainTextAuthProvider(
            username=settings.cassandra_username, password=settings.cassandra_password
        )
    points = contact_points(settings)
    try:
        return _cluster(settings, points, profile, auth)
    except UnresolvableContactPoints:
        raise StoreUnavailable(
            f"none of the Cassandra contact points resolves: {', '.join(points)} "
            f"({PREFIX}CASSANDRA_CONTACT_POINTS)"
        ) from None


# Pinned: unpinned, the driver offers its newest version and steps down on every connection
# (66 -> 65 -> 5 against Cassandra 4.0). v4 rather than v5: v5 frames every message in segments
# with a CRC24 computed in Python, a few percent of the worker's CPU; v4 is served by
# Cassandra 2.2 to 5.0 and has everything this adapter uses.
PROTOCOL_VERSION = 4


def _cluster(settings: Settings, points: list[str], profile: Any, auth: Any) -> Cluster:
    return Cluster(
        contact_points=points,
        protocol_version=PROTOCOL_VERSION,
        port=settings.cassandra_port,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        auth_provider=auth,
        ssl_context=ssl_context(settings),
        connect_timeout=settings.cassandra_connect_timeout_s,
        control_connection_timeout=settings.cassandra_connect_timeout_s,
    )


def where(settings: Settings) -> str:
    """Where the cluster was looked for, for error messages (never the password)."""
    tls = "on" if settings.cassandra_tls else "off"
    user = settings.cassandra_username or "none"
    return (
        f"{settings.cassandra_contact_points} port {settings.cassandra_port} (local DC"
        f" {settings.cassandra_local_dc!r}, TLS {tls}, user {user})"
    )


def connect(cluster: Cluster, settings: Settings, keyspace: str | None) -> Any:
    """Blocking: open a session, turning 'no host answered' into a message that says where the
    cluster was looked for and which settings to check, and a missing ``keyspace`` into one that
    says which command creates it.

    The session is never bound to the keyspace (no ``USE``): every statement names it (see
    ``cql.qualify``), as the server asks of clients that prepare statements."""
    try:
        session = cluster.connect()
    except NoHostAvailable as exc:
        cluster.shutdown()
        raise StoreUnavailable(
            f"Cassandra is unreachable at {where(settings)}: {_reasons(exc)}. Check "
            f"{PREFIX}CASSANDRA_CONTACT_POINTS, _PORT, _TLS and _USERNAME/_PASSWORD."
        ) from None
    except Exception as exc:
        cluster.shutdown()
        raise StoreUnavailable(f"Cassandra at {where(settings)}: {exc}") from exc
    if keyspace is not None and keyspace not in cluster.metadata.keyspaces:
        cluster.shutdown()
        raise SchemaOutdated(
            f"Cassandra keyspace {keyspace!r} does not exist at {where(settings)}: run "
            "`dronetrack db migrate` (it creates the keyspace; `dronetrack db create-keyspace`"
            " alone creates only the keyspace)"
        )
    return session


def _reasons(exc: NoHostAvailable) -> str:
    """The driver's ``errors`` is a map host -> exception when connecting failed, but a plain
    list of hosts when, for one, a session could not use its keyspace."""
    errors = exc.errors
    if isinstance(errors, dict):
        reasons = "; ".join(f"{host}: {err}" for host, err in errors.items())
    elif errors:
        reasons = f"{exc.args[0] if exc.args else exc} ({', '.join(map(str, errors))})"
    else:
        reasons = ""
    return reasons or str(exc.args[0] if exc.args else exc)
