"""Every rendered object is valid: built-in kinds against the Kubernetes OpenAPI schemas, operator
kinds against the CRDs of the operator releases we target (tests/deploy/crds.py); both offline and
strict (unknown fields are errors)."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.crds import custom_kinds, supported_kafka_versions, validators
from tests.deploy.manifests import OVERLAYS, Doc, of_kind, render

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
    if doc["kind"] in custom_kinds():
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


def _check_custom(doc: Doc, docs: tuple[Doc, ...]) -> None:
    kind, name = doc["kind"], doc["metadata"]["name"]
    validator = validators().get((doc["apiVersion"], kind))
    assert validator, (
        f"{kind}/{name}: {doc['apiVersion']} is not served by the operator releases this project"
        f" targets (tests/deploy/crds.py OPERATORS)"
    )
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, f"{kind}/{name}: " + "; ".join(
        f"at {'/'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in errors
    )
    kafka_clusters = {k["metadata"]["name"] for k in of_kind(docs, "Kafka")}
    if kind == "Kafka":
        version = doc["spec"]["kafka"]["version"]
        runs = sorted(supported_kafka_versions())
        assert version in runs, f"Kafka {version} is not one the targeted Strimzi runs: {runs}"
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


def test_custom_validation_rejects_an_unknown_field() -> None:
    """The CRD check is not vacuous: a misspelt field of an operator object fails it."""
    topic = copy.deepcopy(of_kind(render("prod"), "KafkaTopic")[0])
    topic["spec"]["partition"] = 3
    assert list(validators()[(topic["apiVersion"], "KafkaTopic")].iter_errors(topic))


def test_the_operations_guide_states_the_targeted_operator_releases() -> None:
    from tests.deploy.crds import OPERATORS
    from tests.deploy.manifests import DOCS

    text = DOCS.read_text()
    for operator, (version, _) in OPERATORS.items():
        pinned = f"| {operator} | {version} |"
        assert pinned in text, f"docs/operations.md must pin {operator} {version}"


def test_every_custom_kind_is_served_by_a_targeted_operator() -> None:
    from tests.deploy.crds import OPERATORS

    groups = {g for _, gs in OPERATORS.values() for g in gs}
    for overlay in OVERLAYS:
        for doc in render(overlay):
            group = doc["apiVersion"].rpartition("/")[0]
            if "." in group and not group.endswith("k8s.io"):
                assert group in groups, f"{doc['kind']}: no targeted operator serves {group}"
