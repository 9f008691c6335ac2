"""Configuration parity: every setting the code reads (every field of Settings) is given in the
Kubernetes ConfigMap and in compose.yaml under the same name, secrets come from a Secret, and
every ``DRONETRACK_*`` variable a manifest sets is one the code reads. The list comes from the
Settings class, so a new field fails here, naming the variable and the place it is missing."""

from __future__ import annotations

import re

import pytest

from tests.deploy.manifests import (
    DOCKERFILE,
    OVERLAYS,
    config_map,
    containers,
    dronetrack_compose_services,
    load_compose,
    plain_settings,
    render,
    secret_settings,
    setting_names,
    where,
)

PREFIX = "DRONETRACK_"
UNREAD = "which no Settings field reads"
# Secrets of programs that do not run on Kubernetes: the simulator is a development tool, run
# by hand or by compose's `simulator` profile.
NOT_ON_KUBERNETES = {"DRONETRACK_SIM_TOKEN"}


def _unknown(names: set[str]) -> list[str]:
    known = setting_names()
    return sorted(n for n in names if n.startswith(PREFIX) and n not in known)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_holds_every_setting(overlay: str) -> None:
    cm = config_map(render(overlay))
    data = set(cm["data"])
    missing = sorted(plain_settings() - data)
    assert not missing, "\n".join(
        f"{name} (Settings.{name.removeprefix(PREFIX).lower()}) is missing from ConfigMap "
        f"dronetrack-config in overlay {overlay}: add it to deploy/k8s/base/config.env"
        for name in missing
    )
    leaked = sorted(secret_settings() & data)
    assert not leaked, f"secrets in ConfigMap (overlay {overlay}): {leaked}; use dronetrack-secrets"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_set_only_real_settings(overlay: str) -> None:
    docs = render(overlay)
    problems = [
        f"ConfigMap dronetrack-config (overlay {overlay}) sets {name}, {UNREAD}"
        for name in _unknown(set(config_map(docs)["data"]))
    ]
    for workload, c in containers(docs):
        for name in _unknown({e["name"] for e in c.get("env", [])}):
            problems.append(f"{where(workload, c)} (overlay {overlay}) sets {name}, {UNREAD}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_come_from_a_secret(overlay: str) -> None:
    refs: dict[str, list[str]] = {}
    problems = []
    for workload, c in containers(render(overlay)):
        for env in c.get("env", []):
            if env["name"] in secret_settings():
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    problems.append(f"{where(workload, c)}: {env['name']} is not from a Secret")
                else:
                    refs.setdefault(env["name"], []).append(ref["name"])
    missing = sorted(secret_settings() - NOT_ON_KUBERNETES - set(refs))
    problems += [
        f"{name} (a secret Settings field) is read from no Secret in overlay {overlay}: add a "
        f"secretKeyRef to dronetrack-secrets where the service needs it"
        for name in missing
    ]
    assert not problems, "\n".join(problems)
    assert {n for names in refs.values() for n in names} == {"dronetrack-secrets"}


def test_compose_gives_every_setting_to_every_service() -> None:
    services = dronetrack_compose_services(load_compose())
    assert services, "compose.yaml runs no dronetrack service"
    problems = []
    for name, svc in services.items():
        env = set(svc.get("environment", {}))
        problems += [
            f"{var} (Settings.{var.removeprefix(PREFIX).lower()}) is missing from compose.yaml "
            f"service {name}: add it to x-dronetrack-env"
            for var in sorted(set(setting_names()) - env)
        ]
    assert not problems, "\n".join(problems)


def test_compose_sets_only_real_settings() -> None:
    problems = []
    for name, svc in load_compose()["services"].items():
        env = svc.get("environment", {})
        names = set(env) if isinstance(env, dict) else {e.split("=", 1)[0] for e in env}
        problems += [f"compose.yaml service {name} sets {var}, {UNREAD}" for var in _unknown(names)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_compose_and_configmap_use_the_same_names(overlay: str) -> None:
    compose_env = set(load_compose()["x-dronetrack-env"])
    k8s_env = set(config_map(render(overlay))["data"]) | secret_settings() - NOT_ON_KUBERNETES
    assert compose_env - NOT_ON_KUBERNETES == k8s_env, (
        f"only in compose.yaml: {sorted(compose_env - k8s_env)}; "
        f"only in the ConfigMap ({overlay}): {sorted(k8s_env - compose_env)}"
    )


def test_dockerfile_sets_only_real_settings() -> None:
    names = set(re.findall(r"\b(DRONETRACK_[A-Z0-9_]+)=", DOCKERFILE.read_text()))
    assert names, "the image sets its listen addresses and data paths"
    unknown = _unknown(names)
    assert not unknown, f"deploy/Dockerfile sets {unknown}, {UNREAD}"
