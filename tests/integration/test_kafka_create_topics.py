"""`dronetrack kafka create-topics` against the embedded broker: it creates what is missing as
documented, has nothing to do the second time, and reports drift without touching it."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from dronetrack import cli, topics
from dronetrack.broker import EmbeddedBroker
from dronetrack.settings import Settings
from tests.integration.kafka_bare import bare_broker, topic_names  # noqa: F401 - a fixture

DAY_MS = 86_400_000


def create_topics(broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch, *flags: str) -> int:
    monkeypatch.setenv("DRONETRACK_KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap_servers)
    return cli.main(["kafka", "create-topics", *flags])


def state(out: str, name: str) -> str:
    """The STATE column of ``name``'s line of the table."""
    (line,) = [line for line in out.splitlines() if line.startswith(f"{name} ")]
    return " ".join(line.split()[1:-2])


async def describe(settings: Settings, name: str) -> tuple[int, dict[str, str]]:
    """A topic's partition count and the configs set on it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        (topic,) = await admin.describe_topics([name])
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        (resource,) = response.to_object()["resources"]
        configs = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
        return len(topic["partitions"]), configs
    finally:
        await admin.close()


async def create(settings: Settings, topic: NewTopic) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([topic])
    finally:
        await admin.close()


def test_first_run_creates_every_topic_as_documented(
    bare_broker: EmbeddedBroker,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert create_topics(bare_broker, monkeypatch) == 0
    out = capsys.readouterr().out
    assert {name: state(out, name) for name in topics.ALL} == dict.fromkeys(topics.ALL, "created")
    s = bare_broker.settings
    assert asyncio.run(describe(s, "drone.telemetry.v1")) == (
        4,
        {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)},
    )
    assert asyncio.run(describe(s, "drone.alerts.v1")) == (
        4,
        {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)},
    )
    assert asyncio.run(describe(s, "drone.latest.v1")) == (
        4,
        {"cleanup.policy": "compact", "retention.ms": "-1", "min.compaction.lag.ms": "60000"},
    )
    assert asyncio.run(describe(s, "drone.telemetry.dlq.v1")) == (
        4,
        {"cleanup.policy": "delete", "retention.ms": str(14 * DAY_MS)},
    )
    assert asyncio.run(describe(s, "drone.notifications.dlq.v1")) == (
        4,
        {"cleanup.policy": "delete", "retention.ms": str(14 * DAY_MS)},
    )


def test_second_run_has_nothing_to_do(
    bare_broker: EmbeddedBroker,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert create_topics(bare_broker, monkeypatch) == 0
    capsys.readouterr()
    assert create_topics(bare_broker, monkeypatch) == 0
    out = capsys.readouterr().out
    assert {name: state(out, name) for name in topics.ALL} == dict.fromkeys(topics.ALL, "ok")
    assert "nothing to do" in out


def test_dry_run_creates_nothing(
    bare_broker: EmbeddedBroker,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert create_topics(bare_broker, monkeypatch, "--dry-run") == 0
    out = capsys.readouterr().out
    assert {name: state(out, name) for name in topics.ALL} == dict.fromkeys(
        topics.ALL, "would create"
    )
    assert not set(topics.ALL) & asyncio.run(topic_names(bare_broker.settings))


def test_a_topic_with_other_partitions_is_reported_as_drift_and_left_alone(
    bare_broker: EmbeddedBroker,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = bare_broker.settings
    asyncio.run(create(s, NewTopic("drone.latest.v1", 2, 1)))

    assert create_topics(bare_broker, monkeypatch) == 1
    out = capsys.readouterr().out
    assert state(out, "drone.latest.v1") == "DRIFT"
    assert "partitions: 2, documented 4" in out
    assert "cleanup.policy: (not set), documented compact" in out
    # never silently altered; the others were created all the same
    assert asyncio.run(describe(s, "drone.latest.v1")) == (2, {})
    assert set(topics.ALL) <= asyncio.run(topic_names(s))

    assert create_topics(bare_broker, monkeypatch, "--allow-drift") == 0
    assert state(capsys.readouterr().out, "drone.latest.v1") == "DRIFT"
