from __future__ import annotations

from pathlib import Path

import pytest

from dronetrack.settings import Settings, SettingsError


def test_defaults_select_the_embedded_pieces() -> None:
    s = Settings.from_env({})
    assert (s.kafka_embedded, s.store, s.redis_url) == (True, "sqlite", "")


def test_values_are_read_with_their_types() -> None:
    s = Settings.from_env(
        {
            "DRONETRACK_INGEST_PORT": "9000",
            "DRONETRACK_SIM_RATE_HZ": "2.5",
            "DRONETRACK_SQLITE_PATH": "/srv/x.db",
            "DRONETRACK_KAFKA_IDEMPOTENT_PRODUCER": "false",
            "UNRELATED": "ignored",
        }
    )
    assert (s.ingest_port, s.sim_rate_hz, s.sqlite_path) == (9000, 2.5, Path("/srv/x.db"))
    assert s.kafka_idempotent_producer is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DRONETRACK_INGEST_PORT", "eighty"),
        ("DRONETRACK_INGEST_PORT", "-1"),
        ("DRONETRACK_KAFKA_IDEMPOTENT_PRODUCER", "maybe"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_secrets_stay_out_of_repr() -> None:
    s = Settings.from_env({"DRONETRACK_REDIS_URL": "redis://:hunter2@cache:6379/0"})
    assert "hunter2" not in repr(s)


def test_a_lone_service_without_kafka_gets_a_clear_error() -> None:
    with pytest.raises(SettingsError, match="DRONETRACK_KAFKA_BOOTSTRAP_SERVERS"):
        Settings.from_env({}).require_kafka()


def test_to_env_round_trips() -> None:
    s = Settings.from_env({"DRONETRACK_DASHBOARD_PORT": "8123", "DRONETRACK_LOG_DIR": "/srv/l"})
    assert Settings.from_env(s.to_env()) == s
