"""Kafka plumbing shared by the services: topic creation and the one producer delivery policy."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from dronetrack import topics
from dronetrack.settings import Settings

log = logging.getLogger(__name__)


def producer(settings: Settings, **overrides: object) -> AIOKafkaProducer:
    """A producer with the project's delivery policy: acks from every in-sync replica and an
    idempotent producer, so the client's own retries never duplicate a record. Nobody resends
    by hand on top of this."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.require_kafka(),
        "acks": "all",
        "enable_idempotence": settings.kafka_idempotent_producer,
        "linger_ms": 2,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "client_id": "dronetrack",
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)


def consumer(settings: Settings, **overrides: object) -> AIOKafkaConsumer:
    """A consumer of the configured cluster; the caller sets the group and offset policy."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.require_kafka(),
        # Chosen by broker kind (Settings): the embedded broker holds every fetch this long.
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "client_id": "dronetrack",
    }
    options.update(overrides)
    return AIOKafkaConsumer(**options)


async def ensure_topics(
    settings: Settings,
    names: Iterable[str] = topics.ALL,
    compacted: Collection[str] = topics.COMPACTED,
) -> None:
    """Create topics if they are missing (idempotent): the project's, unless ``names`` says."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.require_kafka(),
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name,
                settings.kafka_topic_partitions,
                settings.kafka_replication_factor,
                topic_configs={"cleanup.policy": "compact"} if name in compacted else {},
            )
            for name in names
            if name not in existing
        ]
        if wanted:
            # Another process may win the race; the topic is there either way.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
            log.info("topics created", extra={"topics": [t.name for t in wanted]})
    finally:
        await admin.close()
