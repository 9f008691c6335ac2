"""Kafka plumbing shared by the services: the topics as they should be, their creation, and the
one producer delivery policy."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

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


DAY_MS = 86_400_000

# The configs of the project's topics (docs/topics.md): what the compose and Kubernetes
# manifests declare too (a unit test keeps the KafkaTopics equal).
CONFIGS: dict[str, dict[str, str]] = {
    # Time to recover from a long outage by replaying.
    topics.TELEMETRY: {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)},
    topics.ALERTS: {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)},
    # Each drone's latest state, kept until compaction replaces it: the workers restore from it.
    topics.LATEST: {
        "cleanup.policy": "compact",
        "retention.ms": "-1",
        "min.compaction.lag.ms": "60000",
    },
    # Time to inspect and replay dead letters.
    topics.DEAD_LETTER: {"cleanup.policy": "delete", "retention.ms": str(14 * DAY_MS)},
    # Alert events that could not be delivered: time to fix the channel and send them again.
    topics.NOTIFY_DEAD_LETTER: {"cleanup.policy": "delete", "retention.ms": str(14 * DAY_MS)},
    # Finished flights, for consumers that catch up; the store keeps them for good.
    topics.FLIGHTS: {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)},
}


@dataclass(frozen=True)
class TopicSpec:
    """A topic as it should be on the cluster."""

    name: str
    partitions: int
    replicas: int
    configs: dict[str, str]

    def new_topic(self) -> NewTopic:
        return NewTopic(self.name, self.partitions, self.replicas, topic_configs=self.configs)


def topic_specs(
    settings: Settings,
    names: Iterable[str] = topics.ALL,
    compacted: Collection[str] = topics.COMPACTED,
) -> list[TopicSpec]:
    """The project's topics (or ``names``: a topic of no documented configs is compacted if
    in ``compacted``, else has the cluster's defaults), with the configured partitions."""
    return [
        TopicSpec(
            name,
            settings.kafka_topic_partitions,
            settings.kafka_replication_factor,
            CONFIGS.get(name, {"cleanup.policy": "compact"} if name in compacted else {}),
        )
        for name in names
    ]


def admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.require_kafka(),
        request_timeout_ms=settings.kafka_request_timeout_ms,
    )


async def create_topics(client: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> None:
    """Create ``specs``; one that exists already (another process won the race) is fine.
    Raises the broker's error for any other refusal (the response carries it, aiokafka does
    not raise it)."""
    response = await client.create_topics([spec.new_topic() for spec in specs])
    for error in response.to_object()["topic_errors"]:
        code = error["error_code"]
        if code not in (0, TopicAlreadyExistsError.errno):
            message = error.get("error_message") or ""
            raise for_code(code)(f"topic {error['topic']}: {message}".rstrip(": "))


async def ensure_topics(
    settings: Settings,
    names: Iterable[str] = topics.ALL,
    compacted: Collection[str] = topics.COMPACTED,
) -> None:
    """Create topics if they are missing (idempotent): the project's, unless ``names`` says."""
    client = admin(settings)
    await client.start()
    try:
        # Asking for every topic creates none (naming one may, with auto-creation on).
        existing = set(await client.list_topics())
        wanted = [s for s in topic_specs(settings, names, compacted) if s.name not in existing]
        if wanted:
            await create_topics(client, wanted)
            log.info("topics created", extra={"topics": [s.name for s in wanted]})
    finally:
        await client.close()


CREATE_TOPICS = "dronetrack kafka create-topics"


class TopicsMissing(Exception):
    """Topics a service needs are not on the cluster (a readiness failure)."""

    def __init__(self, names: Sequence[str]) -> None:
        super().__init__(
            f"Kafka topic(s) missing: {', '.join(names)}; create them with `{CREATE_TOPICS}`"
        )


class TopicWait:
    """Whether ``names`` exist, asked without ever creating them: a metadata request naming a
    missing topic creates it, with the broker's defaults, where auto-creation is on (the
    embedded broker; Kafka's default), while the services must find the topics as documented.
    ``present`` lists every topic (an aiokafka client's ``fetch_all_metadata``, a consumer's
    ``topics``). ``check`` is a readiness check; ``wait`` returns once they exist."""

    POLL_S = 1.0

    def __init__(self, present: Callable[[], Awaitable[Collection[str]]], names: Iterable[str]):
        self._present = present
        self.names = tuple(names)
        self.missing: tuple[str, ...] | None = None  # None: not asked yet

    async def refresh(self) -> tuple[str, ...]:
        """Ask the cluster; log when what is missing changes. Returns what is missing."""
        present = set(await self._present())
        missing = tuple(name for name in self.names if name not in present)
        if missing and missing != self.missing:
            log.warning(str(TopicsMissing(missing)), extra={"topics": list(missing)})
        elif self.missing and not missing:
            log.info("Kafka topics present", extra={"topics": list(self.names)})
        self.missing = missing
        return missing

    async def check(self) -> None:
        """Raise TopicsMissing unless every topic exists (asks the cluster)."""
        if missing := await self.refresh():
            raise TopicsMissing(missing)

    async def wait(
        self,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        stopping: Callable[[], bool] = lambda: False,
    ) -> bool:
        """True once every topic exists (asking every POLL_S, through failures to ask); False
        if ``stopping()`` first."""
        while not stopping():
            try:
                if not await self.refresh():
                    return True
            except KafkaError as exc:
                log.warning("listing Kafka topics failed", extra={"error": repr(exc)})
            await sleep(self.POLL_S)
        return False
