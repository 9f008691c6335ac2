"""The kubectl commands of the runbooks (docs/operations.md and the alerts' annotations) work on
both overlays as rendered: they name the namespace through $NS (set to an overlay's namespace),
and the objects, label selectors and ports they use exist in each overlay."""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml

from tests.deploy.manifests import (
    DEPLOY,
    DOCS,
    OVERLAYS,
    Doc,
    matches,
    of_kind,
    pod_spec,
    render,
)

# Namespaces of the add-ons a runbook may look into (docs/operations.md, "Assumptions").
ADDON_NAMESPACES = {"keda", "monitoring", "ingress-nginx", "cass-operator"}
# kubectl's names for the kinds the runbooks use.
KINDS = {
    "deployment": "Deployment",
    "deploy": "Deployment",
    "deployments": "Deployment",
    "job": "Job",
    "hpa": "HorizontalPodAutoscaler",
    "scaledobject": "ScaledObject",
    "kafka": "Kafka",
    "cassandradatacenter": "CassandraDatacenter",
    "ingress": "Ingress",
    "pdb": "PodDisruptionBudget",
    "service": "Service",
    "svc": "Service",
    "networkpolicy": "NetworkPolicy",
}
# Kinds named but not rendered by the overlays: made by an operator or by the operator at runtime.
UNRENDERED = {"secret", "pod", "pods", "po"}


def _runbook_text() -> str:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    annotations = [
        text
        for group in rules["groups"]
        for rule in group["rules"]
        for text in rule["annotations"].values()
    ]
    return DOCS.read_text() + "\n" + "\n".join(annotations)


def _code(text: str) -> list[str]:
    """Shell code of markdown text: fenced blocks, then inline spans (which may wrap)."""
    blocks = re.findall(r"^```\w*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"^```\w*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    spans = [span.replace("\n", " ") for span in re.findall(r"`([^`]+)`", prose)]
    return [b.replace("\\\n", " ") for b in blocks] + spans


def commands() -> list[list[str]]:
    """Every kubectl invocation in the runbooks, as argument lists."""
    found = []
    pieces = _code(_runbook_text())
    for piece in pieces:
        # A command substitution is a command of its own; it stands as one word in the outer one.
        code = piece
        while (inner := re.search(r"\$\(([^()]*)\)", code)) is not None:
            pieces.append(inner.group(1))
            code = code[: inner.start()] + "SUBSTITUTED" + code[inner.end() :]
        for match in re.finditer(r"\bkubectl\b([^|;&)#\n]*)", code):
            found.append(["kubectl", *shlex.split(match.group(1))])
    return found


def _namespace(cmd: list[str]) -> str | None:
    for i, arg in enumerate(cmd):
        if arg in ("-n", "--namespace"):
            return cmd[i + 1]
        if arg.startswith("--namespace="):
            return arg.partition("=")[2]
    return None


def _cluster_command(cmd: list[str]) -> bool:
    """Commands that take the namespace from the overlay, or do not touch the cluster."""
    if len(cmd) < 3:  # the bare word in prose
        return True
    return cmd[1] in ("kustomize", "version") or ("apply" in cmd and "-k" in cmd)


def test_the_runbooks_have_kubectl_commands() -> None:
    assert len(commands()) >= 20


def test_every_command_names_its_namespace() -> None:
    """No `-n dronetrack` (dev is dronetrack-dev) and no command that relies on the context."""
    for cmd in commands():
        if _cluster_command(cmd):
            continue
        ns = _namespace(cmd)
        assert ns is not None, f"`{shlex.join(cmd)}` has no -n"
        assert ns == "$NS" or ns in ADDON_NAMESPACES, f"`{shlex.join(cmd)}`: -n {ns}, not $NS"


def test_ns_is_set_to_each_overlays_namespace() -> None:
    values = set(re.findall(r"\bNS=([\w-]+)", DOCS.read_text()))
    rendered = {ns["metadata"]["name"] for o in OVERLAYS for ns in of_kind(render(o), "Namespace")}
    assert values == rendered, f"docs/operations.md sets NS to {values}, overlays use {rendered}"


def _objects(docs: tuple[Doc, ...], kind: str) -> list[tuple[str, dict[str, str]]]:
    """(name, labels) of the objects of ``kind`` in the namespace once applied; the HPA KEDA
    makes for a ScaledObject (named keda-hpa-NAME, with its labels) counts as an HPA."""
    objects = [
        (d["metadata"]["name"], d["metadata"].get("labels", {})) for d in of_kind(docs, kind)
    ]
    for kafka in of_kind(docs, "Kafka"):  # what Strimzi makes of a Kafka with an exporter
        if kind == "Deployment" and "kafkaExporter" in kafka["spec"]:
            name = f"{kafka['metadata']['name']}-kafka-exporter"
            objects.append((name, {"strimzi.io/kind": "Kafka", "strimzi.io/name": name}))
    if kind == "HorizontalPodAutoscaler":
        objects += [
            (f"keda-hpa-{s['metadata']['name']}", s["metadata"].get("labels", {}))
            for s in of_kind(docs, "ScaledObject")
        ]
    return objects


def _pod_labels(docs: tuple[Doc, ...]) -> list[dict[str, str]]:
    """Labels of our workloads' pods and of the broker pods Strimzi makes for each node pool."""
    return [
        w["spec"]["template"]["metadata"]["labels"]
        for w in docs
        if w["kind"] in ("Deployment", "Job", "StatefulSet")
    ] + [
        {"strimzi.io/cluster": pool["metadata"]["labels"]["strimzi.io/cluster"]}
        for pool in of_kind(docs, "KafkaNodePool")
    ]


def _resources(cmd: list[str]) -> list[tuple[str, str | None]]:
    """(kubectl kind, name or None) the command acts on."""
    args: list[str] = []
    rest = iter(cmd[1:])
    for arg in rest:
        if arg == "--":
            break
        if arg in ("-n", "-l", "-c", "-p", "-o", "--for", "--timeout", "--to-revision"):
            next(rest)
        elif not arg.startswith("-"):
            args.append(arg)
    if args[:1] == ["rollout"]:
        args = args[1:]
    if len(args) < 2 or args[0] in ("create", "kustomize", "apply"):
        return []
    verb, target = args[0], args[1]
    if "/" in target:
        kind, _, name = target.partition("/")
        return [(kind, name)]
    if verb in ("exec", "logs", "port-forward"):
        return [("pod", target)]
    kinds = target.split(",")
    name = args[2] if len(args) > 2 and len(kinds) == 1 else None
    return [(kind, name) for kind in kinds]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_commands_name_objects_that_exist(overlay: str) -> None:
    docs = render(overlay)
    for cmd in commands():
        if _cluster_command(cmd) or _namespace(cmd) != "$NS":
            continue
        for kind, name in _resources(cmd):
            if kind in UNRENDERED:
                continue
            assert kind in KINDS, f"`{shlex.join(cmd)}`: unknown kind {kind}"
            if name is not None:
                names = {n for n, _ in _objects(docs, KINDS[kind])}
                assert name in names, f"`{shlex.join(cmd)}`: no {kind} {name} in {overlay}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_label_selectors_select_something_of_every_kind(overlay: str) -> None:
    docs = render(overlay)
    for cmd in commands():
        if "-l" not in cmd or _namespace(cmd) != "$NS":
            continue
        selector: dict[str, Any] = {
            "matchLabels": dict(pair.split("=", 1) for pair in cmd[cmd.index("-l") + 1].split(","))
        }
        for kind, _ in _resources(cmd):
            if kind in ("pod", "pods", "po"):
                hits = [labels for labels in _pod_labels(docs) if matches(selector, labels)]
            else:
                hits = [n for n, labels in _objects(docs, KINDS[kind]) if matches(selector, labels)]
            assert hits, f"`{shlex.join(cmd)}` selects no {kind} in {overlay}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_port_forwards_reach_container_ports(overlay: str) -> None:
    docs = render(overlay)
    for cmd in commands():
        if "port-forward" not in cmd:
            continue
        ((kind, name),) = _resources(cmd)
        if kind in UNRENDERED:
            continue
        (workload,) = [d for d in of_kind(docs, KINDS[kind]) if d["metadata"]["name"] == name]
        ports = {p["containerPort"] for c in pod_spec(workload)["containers"] for p in c["ports"]}
        for spec in [a for a in cmd if re.fullmatch(r"\d+:\d+", a)]:
            assert int(spec.split(":")[1]) in ports, f"`{shlex.join(cmd)}`: {name} has {ports}"


def test_readiness_can_be_asked_of_every_service() -> None:
    """/readyz names the failing dependency: the guide shows how to read it for each service."""
    forwarded = {
        a.split("/")[1]
        for cmd in commands()
        if "port-forward" in cmd
        for a in cmd
        if a.startswith("deployment/")
    }
    assert {"ingest", "streams", "dashboard", "notifier"} <= forwarded
    assert "/readyz" in DOCS.read_text()
