"""The consumer fetch wait is chosen per broker kind: the embedded broker holds every fetch until
the wait expires (so a short wait bounds latency), real Kafka answers as soon as data arrives (so
a long wait only saves idle polling). ``DRONETRACK_KAFKA_FETCH_MAX_WAIT_MS`` overrides both."""

from __future__ import annotations

import pytest

from dronetrack import kafka
from dronetrack.settings import Settings


def test_the_embedded_broker_waits_10_ms() -> None:
    assert Settings.from_env({}).kafka_fetch_max_wait_ms == 10


def test_real_kafka_waits_500_ms() -> None:
    s = Settings.from_env({"DRONETRACK_KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,kafka-2:9092"})
    assert s.kafka_fetch_max_wait_ms == 500


def test_the_embedded_runs_services_keep_the_embedded_wait() -> None:
    """`dronetrack run` and the tests start the broker, then hand its address to the services:
    that copy still talks to the embedded broker."""
    started = Settings.from_env({}).replace(kafka_bootstrap_servers="127.0.0.1:41234")
    assert started.kafka_fetch_max_wait_ms == 10
    assert Settings.from_env(started.to_env()).kafka_fetch_max_wait_ms == 10


@pytest.mark.parametrize("servers", ["embedded", "kafka-1:9092"])
def test_the_setting_overrides_the_choice(servers: str) -> None:
    s = Settings.from_env(
        {
            "DRONETRACK_KAFKA_BOOTSTRAP_SERVERS": servers,
            "DRONETRACK_KAFKA_FETCH_MAX_WAIT_MS": "120",
        }
    )
    assert s.kafka_fetch_max_wait_ms == 120


def test_zero_means_choose_per_broker_kind() -> None:
    s = Settings.from_env(
        {
            "DRONETRACK_KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092",
            "DRONETRACK_KAFKA_FETCH_MAX_WAIT_MS": "0",
        }
    )
    assert s.kafka_fetch_max_wait_ms == 500


async def test_the_consumer_gets_the_chosen_wait() -> None:
    s = Settings.from_env({"DRONETRACK_KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092"})
    consumer = kafka.consumer(s)
    try:
        assert consumer._fetch_max_wait_ms == 500
    finally:
        await consumer.stop()
