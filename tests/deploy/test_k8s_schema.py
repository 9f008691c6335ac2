"""Every rendered object is valid: built-in kinds against the Kubernetes OpenAPI schemas (offline,
strict: unknown fields are errors), operator kinds against the fields their operators require."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.manifests import CUSTOM_KINDS, OVERLAYS, Doc, of_kind, render

# The oldest Kubernetes minor these manifests promise to run on (native preStop sleep: 1.30+).
KUBERNETES_VERSION = "1.32"


def _objects() -> list[Any]:
    return [
        pytest.param(overlay, i, id=f"{overlay}-{doc['kind']}-{doc['metadata']['name']}")
        for overlay in OVERLAYS
        for i, doc in enumerate(render(overlay))
    ]


@pytest.mark.parametrize(("overlay", "index"), _objects())
def test_object_is_valid(overlay: str, index: int) -> None:
    doc = render(overlay)[index]
    assert doc.get("apiVersion"), "apiVersion required"
    assert doc["metadata"].get("name"), "metadata.name required"
    if doc["kind"] in CUSTOM_KINDS:
        _check_custom(doc, render(overlay))
        return
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} at {path}: {exc.message}")
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(exc.message)


def test_validation_rejects_an_unknown_field() -> None:
    """The schema check is not vacuous: a misspelt field fails it."""
    deployment = copy.deepcopy(of_kind(render("prod"), "Deployment")[0])
    deployment["spec"]["replica"] = 3
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def _get(doc: Doc, path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        assert isinstance(node, dict), f"{doc['kind']}/{doc['metadata']['name']}: {path}"
        assert part in node, f"{doc['kind']}/{doc['metadata']['name']} lacks {path}"
        node = node[part]
    return node


# Fields each operator needs to act on the object (from their CRDs' required properties).
REQUIRED = {
    "Kafka": ["spec.kafka.listeners", "spec.entityOperator.topicOperator"],
    "KafkaNodePool": ["spec.replicas", "spec.roles", "spec.storage.type"],
    "KafkaTopic": ["spec.topicName", "spec.partitions", "spec.replicas", "spec.config"],
    "CassandraDatacenter": [
        "spec.clusterName",
        "spec.serverType",
        "spec.serverVersion",
        "spec.size",
        "spec.storageConfig.cassandraDataVolumeClaimSpec",
    ],
    "ScaledObject": ["spec.scaleTargetRef.name", "spec.maxReplicaCount", "spec.triggers"],
    "ServiceMonitor": ["spec.selector", "spec.endpoints"],
    "PodMonitor": ["spec.selector", "spec.podMetricsEndpoints"],
    "PrometheusRule": ["spec.groups"],
}
API_VERSIONS = {
    "Kafka": "kafka.strimzi.io/v1beta2",
    "KafkaNodePool": "kafka.strimzi.io/v1beta2",
    "KafkaTopic": "kafka.strimzi.io/v1beta2",
    "CassandraDatacenter": "cassandra.datastax.com/v1beta1",
    "ScaledObject": "keda.sh/v1alpha1",
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
}


def _check_custom(doc: Doc, docs: tuple[Doc, ...]) -> None:
    kind, name = doc["kind"], doc["metadata"]["name"]
    assert doc["apiVersion"] == API_VERSIONS[kind], f"{kind}/{name}: apiVersion"
    for path in REQUIRED[kind]:
        _get(doc, path)
    kafka_clusters = {k["metadata"]["name"] for k in of_kind(docs, "Kafka")}
    if kind == "Kafka":
        annotations = doc["metadata"].get("annotations", {})
        assert annotations.get("strimzi.io/kraft") == "enabled", "Kafka must run in KRaft mode"
        assert annotations.get("strimzi.io/node-pools") == "enabled"
        for listener in doc["spec"]["kafka"]["listeners"]:
            assert {"name", "port", "type", "tls"} <= set(listener), f"listener {listener}"
    if kind in ("KafkaNodePool", "KafkaTopic"):
        cluster = doc["metadata"].get("labels", {}).get("strimzi.io/cluster")
        assert cluster in kafka_clusters, f"{kind}/{name} belongs to no Kafka ({cluster!r})"
    if kind == "KafkaNodePool":
        assert set(doc["spec"]["roles"]) <= {"controller", "broker"}
        assert doc["spec"]["storage"]["type"] in ("ephemeral", "persistent-claim", "jbod")
    if kind == "KafkaTopic":
        assert doc["spec"]["partitions"] >= 1
        assert doc["spec"]["replicas"] >= 1
        assert "retention.ms" in doc["spec"]["config"], f"{name}: retention must be declared"
    if kind == "CassandraDatacenter":
        assert doc["spec"]["serverType"] in ("cassandra", "dse", "hcd")
        assert doc["spec"]["size"] >= 1
    if kind == "ScaledObject":
        target = doc["spec"]["scaleTargetRef"]["name"]
        deployments = {d["metadata"]["name"] for d in of_kind(docs, "Deployment")}
        assert target in deployments, f"ScaledObject/{name} scales missing Deployment {target}"
        for trigger in doc["spec"]["triggers"]:
            assert trigger["type"] == "kafka"
            meta = trigger["metadata"]
            assert {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} <= set(meta)
            # KEDA reads metadata values as strings.
            assert all(isinstance(v, str) for v in meta.values()), f"{meta} must be strings"
    if kind == "PrometheusRule":
        for group in doc["spec"]["groups"]:
            for rule in group["rules"]:
                assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
                assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
