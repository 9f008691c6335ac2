"""The topics' documented configs are the same in the code (what `dronetrack kafka create-topics`
and the embedded run create) and in the Kubernetes KafkaTopics (what Strimzi creates)."""

from __future__ import annotations

from pathlib import Path

import yaml

from dronetrack import kafka, topicadmin, topics
from dronetrack.settings import Settings

KAFKA_TOPICS = Path(__file__).parents[2] / "deploy/k8s/components/datastores/kafka-topics.yaml"


def test_every_topic_has_documented_configs() -> None:
    specs = {s.name: s for s in kafka.topic_specs(Settings.from_env({}))}
    assert set(specs) == set(topics.ALL)
    assert specs["drone.latest.v1"].configs["cleanup.policy"] == "compact"
    for name in (
        "drone.telemetry.v1",
        "drone.alerts.v1",
        "drone.telemetry.dlq.v1",
        "drone.notifications.dlq.v1",
    ):
        assert specs[name].configs["cleanup.policy"] == "delete", name
    assert specs["drone.telemetry.v1"].configs["retention.ms"] == "604800000"  # 7 days
    assert specs["drone.notifications.dlq.v1"].configs["retention.ms"] == "1209600000"  # 14 days


def test_the_kafka_topics_of_kubernetes_have_the_same_configs() -> None:
    declared = {
        doc["spec"]["topicName"]: {k: str(v) for k, v in doc["spec"]["config"].items()}
        for doc in yaml.safe_load_all(KAFKA_TOPICS.read_text())
        if doc and doc["kind"] == "KafkaTopic"
    }
    assert declared == kafka.CONFIGS


def test_the_partitions_and_replicas_are_the_settings() -> None:
    s = Settings.from_env(
        {"DRONETRACK_KAFKA_TOPIC_PARTITIONS": "12", "DRONETRACK_KAFKA_REPLICATION_FACTOR": "3"}
    )
    assert {(t.partitions, t.replicas) for t in kafka.topic_specs(s)} == {(12, 3)}


def test_an_undocumented_topic_is_compacted_only_when_asked() -> None:
    s = Settings.from_env({})
    plain, state = kafka.topic_specs(s, ["x-minute", "x-minute-state"], {"x-minute-state"})
    assert (plain.configs, state.configs) == ({}, {"cleanup.policy": "compact"})


def test_differences_name_what_differs_and_what_is_documented() -> None:
    spec = kafka.TopicSpec("t", 4, 3, {"cleanup.policy": "compact", "retention.ms": "-1"})
    found = topicadmin.Found(2, 1, {"cleanup.policy": "delete", "segment.ms": "1000"})
    assert topicadmin.differences(spec, found) == [
        "partitions: 2, documented 4",
        "replicas: 1, documented 3",
        "cleanup.policy: delete, documented compact",
        "retention.ms: (not set), documented -1",
    ]
    assert topicadmin.differences(spec, topicadmin.Found(4, 3, dict(spec.configs))) == []
