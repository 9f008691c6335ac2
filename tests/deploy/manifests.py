"""What the deploy tests read: rendered Kustomize overlays, compose.yaml, the Dockerfile, and the
settings the code actually reads (derived from the Settings class, so new fields are demanded
everywhere as soon as they exist)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import fields
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from dronetrack.settings import PREFIX, Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "prod")
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCS = ROOT / "docs" / "operations.md"

Doc = dict[str, Any]

WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
# Long-running dronetrack services; their container's first argument is a `dronetrack` command.
SERVICES = ("ingest", "streams", "dashboard", "notifier")


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def setting_names() -> dict[str, bool]:
    """Every variable the code reads, mapped to whether it is a secret."""
    return {env_name(f.name): bool(f.metadata.get("secret")) for f in fields(Settings)}


def plain_settings() -> set[str]:
    return {name for name, secret in setting_names().items() if not secret}


def secret_settings() -> set[str]:
    return {name for name, secret in setting_names().items() if secret}


@cache
def render(overlay: str) -> tuple[Doc, ...]:
    """``kubectl kustomize`` of one overlay, as parsed objects (cached: rendering takes ~1 s)."""
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is needed to render deploy/k8s (it ships with this machine's image)"
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / overlay)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def of_kind(docs: tuple[Doc, ...], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def named(docs: tuple[Doc, ...], kind: str, name: str) -> Doc:
    found = [d for d in of_kind(docs, kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload: Doc) -> Doc:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"]["spec"])


def containers(docs: tuple[Doc, ...]) -> Iterator[tuple[Doc, Doc]]:
    """(workload, container) for every container and init container of every workload."""
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            spec = pod_spec(doc)
            for c in [*spec.get("initContainers", []), *spec["containers"]]:
                yield doc, c


def where(workload: Doc, container: Doc | None = None) -> str:
    at = f"{workload['kind']}/{workload['metadata']['name']}"
    return f"{at} container {container['name']}" if container else at


def config_map(docs: tuple[Doc, ...]) -> Doc:
    """The rendered dronetrack-config ConfigMap (its name carries Kustomize's hash suffix)."""
    maps = [
        d
        for d in of_kind(docs, "ConfigMap")
        if d["metadata"]["name"].startswith("dronetrack-config")
    ]
    assert len(maps) == 1, f"expected one dronetrack-config ConfigMap, found {len(maps)}"
    return maps[0]


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels and matchExpressions)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def load_compose() -> Doc:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def dronetrack_compose_services(compose: Doc) -> dict[str, Doc]:
    """Compose services that run the dronetrack image."""
    return {
        name: svc
        for name, svc in compose["services"].items()
        if str(svc.get("image", "")).startswith("dronetrack:")
    }
