"""The operators' CustomResourceDefinitions the manifests target, as JSON Schema validators.

The CRDs in ``schemas/crds/`` are copied unchanged from the pinned operator releases (see
``OPERATORS`` and tests/deploy/README.md). A CRD's ``openAPIV3Schema`` is JSON Schema with
Kubernetes extensions; like the API server's strict field validation (kubectl's default), an
object field the schema does not declare is an error unless the schema preserves unknown fields.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parent / "schemas"
CRDS = SCHEMAS / "crds"

# Operator -> (release the manifests target, API groups it serves). docs/operations.md states the
# same releases; tests/deploy checks that it does.
OPERATORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Strimzi": ("1.2.0", ("kafka.strimzi.io",)),
    "KEDA": ("2.20.2", ("keda.sh",)),
    "Prometheus Operator": ("0.93.0", ("monitoring.coreos.com",)),
    "cass-operator": ("1.32.0", ("cassandra.datastax.com",)),
}


def _strict(schema: Any) -> Any:
    """A copy of ``schema`` in which objects with declared properties refuse undeclared ones.

    Only the structural part (properties, items, additionalProperties) is made strict: the
    branches of anyOf/oneOf/allOf/not list constraints on a subset of fields and stay as written.
    """
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {k: _strict(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    if isinstance(out.get("items"), dict):
        out["items"] = _strict(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _strict(out["additionalProperties"])
    return out


def _crds() -> Iterator[dict[str, Any]]:
    for path in sorted(CRDS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == "CustomResourceDefinition":
                yield doc


@cache
def validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> validator, for every version the pinned releases serve."""
    found: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for crd in _crds():
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served"):
                continue
            schema = _strict(version["schema"]["openAPIV3Schema"])
            found[(f"{group}/{version['name']}", kind)] = jsonschema.Draft4Validator(schema)
    return found


def custom_kinds() -> set[str]:
    return {kind for _, kind in validators()}


def supported_kafka_versions() -> set[str]:
    """Kafka versions the pinned Strimzi release runs (its kafka-versions.yaml)."""
    versions = yaml.safe_load((SCHEMAS / "strimzi-kafka-versions.yaml").read_text())
    return {str(v["version"]) for v in versions if v["supported"]}
