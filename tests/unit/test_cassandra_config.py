"""The Cassandra adapter's configuration and failure modes, with the real driver and no cluster."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, NoHostAvailable
from cassandra.cqltypes import DateType
from cassandra.policies import DCAwareRoundRobinPolicy, RetryPolicy, TokenAwarePolicy

from dronetrack.broker import free_port
from dronetrack.record import Telemetry
from dronetrack.settings import Settings, SettingsError
from dronetrack.store import StoreUnavailable, open_store
from dronetrack.store.cassandra import (
    CassandraStore,
    ack_write_time,
    day_of,
    decode_latest,
    latest_value,
    latest_write_time,
    to_ms,
)
from dronetrack.store.cassandra_cluster import (
    IdempotentOnlyRetryPolicy,
    build_cluster,
    connect,
    consistency,
    contact_points,
)

SECRET = "s3cret-pass"


def settings(**over: object) -> Settings:
    base = Settings(
        store="cassandra",
        cassandra_contact_points="127.0.0.1",
        cassandra_port=free_port(),  # nothing listens there
        cassandra_local_dc="eu-west",
        cassandra_username="svc",
        cassandra_password=SECRET,
        cassandra_connect_timeout_s=2.0,
    )
    return base.replace(**over)


def test_open_store_selects_cassandra() -> None:
    assert isinstance(open_store(settings()), CassandraStore)


def test_cluster_is_token_aware_in_the_local_dc_with_settings_consistency() -> None:
    cluster = build_cluster(settings(cassandra_read_consistency="LOCAL_ONE"))
    try:
        profile = cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT]
        policy = profile.load_balancing_policy
        assert isinstance(policy, TokenAwarePolicy)
        assert isinstance(policy._child_policy, DCAwareRoundRobinPolicy)
        assert policy._child_policy.local_dc == "eu-west"
        assert profile.consistency_level == ConsistencyLevel.LOCAL_ONE
        assert isinstance(profile.retry_policy, IdempotentOnlyRetryPolicy)
        assert cluster.auth_provider is not None
        assert cluster.ssl_context is None
    finally:
        cluster.shutdown()


def test_the_protocol_version_is_pinned_so_connecting_never_negotiates_down() -> None:
    cluster = build_cluster(settings())
    try:
        assert cluster.protocol_version == 4
        assert cluster._protocol_version_explicit
    finally:
        cluster.shutdown()


class _RefusingCluster:
    """A cluster whose connect fails as the driver's does when no host can be used."""

    def __init__(self, error: NoHostAvailable) -> None:
        self.error, self.shut_down = error, False

    def connect(self, keyspace: str | None = None) -> None:
        raise self.error

    def shutdown(self) -> None:
        self.shut_down = True


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        # Session.__init__: a session that could not use its keyspace on any host.
        (
            NoHostAvailable("Unable to connect to any servers using keyspace 'ks'", ["10.0.0.7"]),
            "Unable to connect to any servers using keyspace 'ks' (10.0.0.7)",
        ),
        # Cluster._connect_host_in_lbp / control connection: a map host -> error.
        (
            NoHostAvailable(
                "Unable to connect to any servers", {"10.0.0.7:9042": ConnectionRefusedError(111)}
            ),
            "10.0.0.7:9042: 111",
        ),
    ],
)
def test_no_host_available_in_either_form_is_a_clear_error(
    error: NoHostAvailable, expected: str
) -> None:
    cluster = _RefusingCluster(error)
    with pytest.raises(StoreUnavailable) as failure:
        connect(cluster, settings(), "ks")  # type: ignore[arg-type]
    assert expected in str(failure.value)
    assert "DRONETRACK_CASSANDRA_CONTACT_POINTS" in str(failure.value)
    assert cluster.shut_down


def test_tls_settings_build_a_verifying_context() -> None:
    cluster = build_cluster(settings(cassandra_tls=True))
    try:
        assert cluster.ssl_context is not None
        assert cluster.ssl_context.check_hostname
    finally:
        cluster.shutdown()


def test_unresolvable_contact_points_are_a_clear_error() -> None:
    with pytest.raises(StoreUnavailable, match="DRONETRACK_CASSANDRA_CONTACT_POINTS"):
        build_cluster(settings(cassandra_contact_points="no-such-host.invalid"))


def test_bad_settings_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="DRONETRACK_CASSANDRA_READ_CONSISTENCY"):
        consistency("MOSTLY", "CASSANDRA_READ_CONSISTENCY")
    with pytest.raises(SettingsError, match="DRONETRACK_CASSANDRA_CONTACT_POINTS"):
        contact_points(settings(cassandra_contact_points=" , "))


def test_the_password_stays_out_of_reprs_and_errors() -> None:
    s = settings()
    assert SECRET not in repr(s)
    assert SECRET not in repr(CassandraStore(s))


async def test_an_unreachable_cluster_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    store = CassandraStore(settings())
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as failure:
        await store.open()
    message = str(failure.value)
    assert "unreachable" in message
    assert "DRONETRACK_CASSANDRA_CONTACT_POINTS" in message
    assert SECRET not in message
    assert SECRET not in caplog.text
    assert time.monotonic() - started < 30
    await store.close()


@pytest.mark.parametrize("idempotent", [True, False])
def test_only_idempotent_statements_are_retried(idempotent: bool) -> None:
    policy = IdempotentOnlyRetryPolicy()
    query = SimpleNamespace(is_idempotent=idempotent)
    cl = ConsistencyLevel.LOCAL_QUORUM
    decisions = [
        policy.on_write_timeout(query, cl, "SIMPLE", 2, 1, 0)[0],
        policy.on_unavailable(query, cl, 2, 1, 0)[0],
        policy.on_request_error(query, cl, OSError("reset"), 0)[0],
    ]
    expected = RetryPolicy.RETRY_NEXT_HOST if idempotent else RetryPolicy.RETHROW
    assert decisions == [expected] * 3
    assert policy.on_write_timeout(query, cl, "SIMPLE", 2, 1, 1)[0] == RetryPolicy.RETHROW


def test_timestamps_survive_the_drivers_encoding() -> None:
    for ms in (0, 1_795_000_000_123, 253_402_300_799_999):
        decoded = DateType.deserialize(DateType.serialize(ms, 4), 4)
        assert to_ms(decoded) == ms


def test_days_are_utc_and_latest_write_times_follow_event_time() -> None:
    assert day_of(86_400_000 - 1).days_from_epoch == 0
    assert day_of(86_400_000).days_from_epoch == 1

    def rec(ts: int, seq: int | None) -> Telemetry:
        return Telemetry(
            drone_id="d",
            ts=ts,
            lat=0.0,
            lon=0.0,
            alt_m=0.0,
            speed_mps=0.0,
            heading_deg=0.0,
            battery_pct=1.0,
            seq=seq,
            fleet="f",
            received_at=ts,
        )

    assert [latest_write_time(rec(ts, seq)) for ts, seq in [(5, None), (5, 2**63 - 1), (6, 0)]] == [
        5000,
        5000,
        6000,
    ]
    # Within one millisecond Cassandra keeps the greater value: seq orders it, whole range.
    order = [None, 0, 1, 999, 1000, 1001, 2**62, 2**63 - 1]
    values = [latest_value(rec(5, seq)) for seq in order]
    assert values == sorted(values)
    assert len(set(values)) == len(order)
    assert values[4].startswith('00000000000000001001 {"drone_id":"d",')
    assert [decode_latest(v).seq for v in values] == order


def test_store_settings_are_read_from_the_environment() -> None:
    s = Settings.from_env(
        {
            "DRONETRACK_STORE": "cassandra",
            "DRONETRACK_CASSANDRA_CONTACT_POINTS": "c1,c2",
            "DRONETRACK_CASSANDRA_TLS": "true",
            "DRONETRACK_CASSANDRA_PASSWORD": SECRET,
            "DRONETRACK_STORE_TRACK_TTL_S": "3600",
            "DRONETRACK_CASSANDRA_REQUEST_TIMEOUT_S": "2.5",
        }
    )
    assert (s.cassandra_tls, s.store_track_ttl_s, s.cassandra_request_timeout_s) == (
        True,
        3600,
        2.5,
    )
    assert contact_points(s) == ["c1", "c2"]
    assert SECRET not in repr(s)


def test_earlier_acknowledgements_get_greater_write_times_that_are_never_in_the_future() -> None:
    now_us = time.time_ns() // 1000
    early, late = ack_write_time(1_795_000_000_000), ack_write_time(1_795_000_000_001)
    assert early > late > 0
    assert early < now_us
