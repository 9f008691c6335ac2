"""compose.yaml: valid against the Compose Specification, and it brings the stack up in order
on real parts (the Docker engine itself is not available here: see docs/operations.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath

import jsonschema
import pytest
import yaml

from dronetrack import kafka, topics
from dronetrack.settings import Settings
from tests.deploy.manifests import DEPLOY, ROOT, dronetrack_compose_services, load_compose

SCHEMA = Path(__file__).parent / "schemas" / "compose-spec.json"


def test_compose_file_matches_the_compose_spec() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(load_compose()), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_validation_rejects_an_unknown_key() -> None:
    schema = json.loads(SCHEMA.read_text())
    compose = load_compose()
    compose["services"]["ingest"]["helthcheck"] = {}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(compose))


def test_the_whole_stack_is_there() -> None:
    services = load_compose()["services"]
    wanted = {
        "kafka",
        "kafka-init",
        "cassandra",
        "db-migrate",
        "redis",
        "ingest",
        "streams",
        "dashboard",
        "notifier",
        "simulator",
        "prometheus",
        "grafana",
    }
    assert wanted <= set(services), f"missing: {wanted - set(services)}"
    assert services["streams"]["deploy"]["replicas"] == 2, "two stream workers"
    assert services["simulator"]["profiles"] == ["simulator"], "the simulator is opt-in"
    commands = {
        name: svc["command"] for name, svc in dronetrack_compose_services(load_compose()).items()
    }
    assert commands["db-migrate"] == ["db", "migrate"]
    for name in ("ingest", "streams", "dashboard", "notifier"):
        assert commands[name] == [name]


def test_kafka_runs_in_kraft_mode() -> None:
    env = load_compose()["services"]["kafka"]["environment"]
    assert "broker" in env["KAFKA_PROCESS_ROLES"]
    assert "controller" in env["KAFKA_PROCESS_ROLES"]
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in env
    assert not any("ZOOKEEPER" in key for key in env), "no ZooKeeper"


def test_topics_are_created_with_the_configured_partitions() -> None:
    compose = load_compose()
    init = compose["services"]["kafka-init"]
    assert init["command"] == ["kafka", "create-topics"], "kafka-init runs dronetrack's command"
    assert init["environment"] == compose["x-dronetrack-env"], "with the services' settings"
    specs = kafka.topic_specs(Settings.from_env(init["environment"]))
    assert {s.name for s in specs} == set(topics.ALL), "kafka-init's topics differ from topics.py"
    partitions = compose["x-dronetrack-env"]["DRONETRACK_KAFKA_TOPIC_PARTITIONS"]
    assert {s.partitions for s in specs} == {int(partitions)}
    assert all("retention.ms" in s.configs for s in specs), "every topic declares its retention"


def test_every_service_is_health_checked() -> None:
    services = load_compose()["services"]
    one_shot = {"kafka-init", "db-migrate", "simulator", "kafka-exporter"}
    for name, svc in services.items():
        if name not in one_shot:
            assert "healthcheck" in svc, f"{name} has no healthcheck"


def test_start_up_order_waits_for_health_and_migrations() -> None:
    services = load_compose()["services"]

    def waits(name: str) -> dict[str, str]:
        return {
            dep: cond["condition"] for dep, cond in services[name].get("depends_on", {}).items()
        }

    assert waits("kafka-init") == {"kafka": "service_healthy"}
    assert waits("db-migrate") == {"cassandra": "service_healthy"}
    assert waits("ingest")["kafka-init"] == "service_completed_successfully"
    for name in ("streams", "dashboard", "notifier"):
        assert waits(name)["db-migrate"] == "service_completed_successfully", name
    for name in ("streams", "notifier"):
        assert waits(name)["kafka-init"] == "service_completed_successfully", name
    assert waits("dashboard")["redis"] == "service_healthy"
    assert waits("simulator") == {"ingest": "service_healthy"}
    assert waits("grafana") == {"prometheus": "service_healthy"}
    for name in ("kafka-init", "db-migrate"):
        assert services[name]["restart"] == "no", f"{name} runs once"


def test_images_are_pinned() -> None:
    for name, svc in load_compose()["services"].items():
        image = svc["image"]
        if image.startswith("dronetrack:"):
            assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
            continue
        repo, _, tag = image.rpartition(":")
        assert repo, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        assert re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"


def test_dronetrack_containers_are_hardened() -> None:
    for name, svc in dronetrack_compose_services(load_compose()).items():
        assert svc["read_only"] is True, name
        assert svc["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in svc["security_opt"], name
        assert not svc["user"].startswith("0"), name


def test_published_ports_stay_on_loopback() -> None:
    for name, svc in load_compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to the network"


def test_prometheus_scrapes_every_service() -> None:
    compose = load_compose()
    prometheus = compose["services"]["prometheus"]
    mounts = {
        v.split(":")[1]: ROOT / v.split(":")[0] for v in prometheus["volumes"] if v.startswith("./")
    }
    config = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    targets: dict[str, set[str]] = {}
    for job in config["scrape_configs"]:
        hosts = {t.split(":")[0] for sc in job.get("static_configs", []) for t in sc["targets"]}
        hosts |= {n for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
        targets[job["job_name"]] = hosts
    env = compose["x-dronetrack-env"]
    assert targets["ingest"] == {"ingest"}
    assert targets["dashboard"] == {"dashboard"}
    assert targets["streams"] == {"streams"}
    assert targets["notifier"] == {"notifier"}
    (streams_sd,) = next(j for j in config["scrape_configs"] if j["job_name"] == "streams")[
        "dns_sd_configs"
    ]
    assert str(streams_sd["port"]) == env["DRONETRACK_STREAMS_WEB_PORT"]
    ports = {
        j["job_name"]: t
        for j in config["scrape_configs"]
        for sc in j.get("static_configs", [])
        for t in sc["targets"]
    }
    assert ports["ingest"] == f"ingest:{env['DRONETRACK_INGEST_PORT']}"
    assert ports["dashboard"] == f"dashboard:{env['DRONETRACK_DASHBOARD_PORT']}"
    assert ports["notifier"] == f"notifier:{env['DRONETRACK_NOTIFY_PORT']}"
    assert "kafka-exporter" in targets, "consumer lag comes from the Kafka exporter"
    for rule_file in config["rule_files"]:
        # Prometheus reads a relative path from the config file's directory.
        in_container = str(PurePosixPath("/etc/prometheus") / rule_file)
        assert in_container in mounts, f"{rule_file} is not mounted"
        assert mounts[in_container] == ROOT / "deploy" / "prometheus" / rule_file


def test_grafana_is_provisioned_with_the_dashboard() -> None:
    grafana = load_compose()["services"]["grafana"]
    mounts = {v.split(":")[1]: ROOT / v.split(":")[0] for v in grafana["volumes"]}
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasource,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "dronetrack.yml").read_text())[
        "providers"
    ]
    assert provider["options"]["path"] in mounts
    dashboards = list(mounts[provider["options"]["path"]].glob("*.json"))
    assert dashboards, "no dashboard to provision"
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        assert dashboard["panels"], path
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
            for target in panel["targets"]:
                assert target["expr"].strip(), panel["title"]


@pytest.mark.parametrize(
    "path", sorted((DEPLOY / "prometheus").glob("*.yml")), ids=lambda p: p.name
)
def test_prometheus_files_parse(path: Path) -> None:
    assert yaml.safe_load(path.read_text())
