"""An embedded broker of its own without the project's topics, as a real cluster is before
`dronetrack kafka create-topics` ran (the session broker has them from its start)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from dronetrack import topics
from dronetrack.broker import EmbeddedBroker
from dronetrack.settings import Settings


async def topic_names(settings: Settings) -> set[str]:
    """Every topic on the cluster (asking for all of them creates none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _delete(settings: Settings, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics(names)
    finally:
        await admin.close()


@pytest.fixture
def bare_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(Settings.from_env({}), log_path=tmp_path / "broker.log")
    asyncio.run(broker.start())
    try:
        asyncio.run(_delete(broker.settings, list(topics.ALL)))
        assert not set(topics.ALL) & asyncio.run(topic_names(broker.settings))
        yield broker
    finally:
        asyncio.run(broker.stop())
