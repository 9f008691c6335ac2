"""The rules an SRE reviews a manifest for, as assertions over every rendered overlay."""

from __future__ import annotations

from typing import Any

import pytest

from dronetrack import topics
from dronetrack.cli import parser
from tests.deploy.manifests import (
    OVERLAYS,
    SERVICES,
    WORKLOAD_KINDS,
    Doc,
    config_map,
    containers,
    matches,
    named,
    of_kind,
    pod_spec,
    render,
    where,
)

pytestmark = pytest.mark.parametrize("overlay", OVERLAYS)
# Services run at a fixed count: the notifier's load is alerts, a few a second at most.
FIXED_REPLICAS = {"notifier"}
# Where the notifier must never be sent by a webhook URL: the cluster's own addresses (pods,
# Services and nodes live in private ranges), loopback and the cloud metadata endpoint.
PRIVATE_RANGES = {
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
}


def _quantity_present(resources: dict[str, Any], kind: str) -> list[str]:
    return [r for r in ("cpu", "memory") if r not in resources.get(kind, {})]


def test_every_container_is_hardened(overlay: str) -> None:
    problems = []
    for workload, c in containers(render(overlay)):
        pod = pod_spec(workload)
        psc = pod.get("securityContext", {})
        sc = c.get("securityContext", {})
        at = where(workload, c)
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            problems.append(f"{at}: runAsNonRoot is not set")
        if (sc.get("runAsUser", psc.get("runAsUser", 1))) == 0:
            problems.append(f"{at}: runs as uid 0")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{at}: root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{at}: privilege escalation is allowed")
        if sc.get("privileged"):
            problems.append(f"{at}: privileged")
        if "ALL" not in sc.get("capabilities", {}).get("drop", []):
            problems.append(f"{at}: capabilities are not all dropped")
        if sc.get("capabilities", {}).get("add"):
            problems.append(f"{at}: adds capabilities")
        seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {}))
        if seccomp.get("type") != "RuntimeDefault":
            problems.append(f"{at}: no RuntimeDefault seccomp profile")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{at}: mounts a service account token it does not need")
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            problems.append(f"{at}: shares a host namespace")
    assert not problems, "\n".join(problems)


def test_every_container_has_resources(overlay: str) -> None:
    problems = []
    for workload, c in containers(render(overlay)):
        res = c.get("resources", {})
        for missing in _quantity_present(res, "requests"):
            problems.append(f"{where(workload, c)}: no {missing} request")
        if "memory" not in res.get("limits", {}):
            problems.append(f"{where(workload, c)}: no memory limit")
    assert not problems, "\n".join(problems)


def test_every_long_running_container_has_probes(overlay: str) -> None:
    problems = []
    for workload, c in containers(render(overlay)):
        if workload["kind"] in ("Job", "CronJob"):
            continue
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if probe not in c:
                problems.append(f"{where(workload, c)}: no {probe}")
    assert not problems, "\n".join(problems)


def test_services_probe_their_real_endpoints(overlay: str) -> None:
    """Liveness asks /healthz (alive), readiness /readyz (dependencies answer)."""
    docs = render(overlay)
    for name in SERVICES:
        deployment = named(docs, "Deployment", name)
        (c,) = pod_spec(deployment)["containers"]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe, path in (
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ):
            get = c[probe]["httpGet"]
            assert get["path"] == path, f"{name} {probe} asks {get['path']}, not {path}"
            assert get["port"] in ports, f"{name} {probe} port {get['port']} is not declared"
        assert c["args"][0] in _commands(), f"{name} runs unknown command {c['args']}"


def _commands() -> set[str]:
    sub = next(a for a in parser()._actions if a.dest == "command")
    return set(sub.choices or ())


def test_container_ports_match_the_settings(overlay: str) -> None:
    docs = render(overlay)
    data = config_map(docs)["data"]
    wanted = {
        "ingest": int(data["DRONETRACK_INGEST_PORT"]),
        "streams": int(data["DRONETRACK_STREAMS_WEB_PORT"]),
        "dashboard": int(data["DRONETRACK_DASHBOARD_PORT"]),
        "notifier": int(data["DRONETRACK_NOTIFY_PORT"]),
    }
    for name, port in wanted.items():
        (c,) = pod_spec(named(docs, "Deployment", name))["containers"]
        assert [p["containerPort"] for p in c["ports"]] == [port], f"{name} listens on {port}"
    for host in ("INGEST_HOST", "DASHBOARD_HOST", "STREAMS_WEB_HOST", "NOTIFY_HOST"):
        listen = data[f"DRONETRACK_{host}"]
        assert listen == "0.0.0.0", f"{host}: pods must listen beyond loopback"  # noqa: S104


def test_deployments_roll_without_downtime(overlay: str) -> None:
    docs = render(overlay)
    for d in of_kind(docs, "Deployment"):
        strategy = d["spec"]["strategy"]
        assert strategy["type"] == "RollingUpdate", where(d)
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, f"{where(d)}: maxUnavailable"
    for name in SERVICES:
        pod = pod_spec(named(docs, "Deployment", name))
        grace = pod.get("terminationGracePeriodSeconds", 30)
        # aiohttp drains for 10 s after a 5 s preStop; a worker finishes its batch and commits.
        assert grace >= (60 if name == "streams" else 30), f"{name}: grace {grace}s is too short"


def test_http_services_wait_for_endpoints_to_drop_them(overlay: str) -> None:
    for name in ("ingest", "dashboard"):
        (c,) = pod_spec(named(render(overlay), "Deployment", name))["containers"]
        assert c["lifecycle"]["preStop"]["sleep"]["seconds"] >= 5, name


def test_replicas_spread_over_nodes_and_zones(overlay: str) -> None:
    for name in SERVICES:
        d = named(render(overlay), "Deployment", name)
        pod = pod_spec(d)
        keys = {t["topologyKey"] for t in pod.get("topologySpreadConstraints", [])}
        assert {"kubernetes.io/hostname", "topology.kubernetes.io/zone"} <= keys, name
        labels = d["spec"]["template"]["metadata"]["labels"]
        for t in pod["topologySpreadConstraints"]:
            assert matches(t["labelSelector"], labels), f"{name}: spread selects other pods"


def test_selectors_find_their_pods(overlay: str) -> None:
    """Services, PDBs, HPAs and monitors point at things that exist, by labels and names."""
    docs = render(overlay)
    pods = {
        where(w): w["spec"]["template"]["metadata"]["labels"]
        for w in docs
        if w["kind"] in WORKLOAD_KINDS and w["kind"] != "CronJob"
    }
    for d in of_kind(docs, "Deployment"):
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert matches(d["spec"]["selector"], labels), f"{where(d)} selects not its own pods"
    for svc in of_kind(docs, "Service"):
        hits = [
            w
            for w, labels in pods.items()
            if matches({"matchLabels": svc["spec"]["selector"]}, labels)
        ]
        assert len(hits) == 1, f"Service/{svc['metadata']['name']} selects {hits}"
        workload = named(docs, *hits[0].split("/"))
        names = {p["name"] for c in pod_spec(workload)["containers"] for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in names, f"Service/{svc['metadata']['name']} {port}"
    for pdb in of_kind(docs, "PodDisruptionBudget"):
        hits = [w for w, labels in pods.items() if matches(pdb["spec"]["selector"], labels)]
        assert len(hits) == 1, f"PodDisruptionBudget/{pdb['metadata']['name']} selects {hits}"
    for hpa in of_kind(docs, "HorizontalPodAutoscaler"):
        named(docs, hpa["spec"]["scaleTargetRef"]["kind"], hpa["spec"]["scaleTargetRef"]["name"])
    for sm in of_kind(docs, "ServiceMonitor"):
        svcs = [
            s
            for s in of_kind(docs, "Service")
            if matches(sm["spec"]["selector"], s["metadata"]["labels"])
        ]
        assert len(svcs) == 1, f"ServiceMonitor/{sm['metadata']['name']} selects {len(svcs)}"
        ports = {p["name"] for p in svcs[0]["spec"]["ports"]}
        for ep in sm["spec"]["endpoints"]:
            assert ep["port"] in ports, f"ServiceMonitor/{sm['metadata']['name']} port"
            assert ep["path"] == "/metrics"


def test_every_service_is_disruption_budgeted_and_monitored(overlay: str) -> None:
    docs = render(overlay)
    for name in SERVICES:
        labels = named(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        pdbs = [
            p
            for p in of_kind(docs, "PodDisruptionBudget")
            if matches(p["spec"]["selector"], labels)
        ]
        assert pdbs, f"no PodDisruptionBudget covers {name}"
        svc = named(docs, "Service", name)
        assert any(
            matches(sm["spec"]["selector"], svc["metadata"]["labels"])
            for sm in of_kind(docs, "ServiceMonitor")
        ), f"no ServiceMonitor scrapes {name}"


def test_ingest_and_dashboard_scale_on_cpu(overlay: str) -> None:
    docs = render(overlay)
    for name in ("ingest", "dashboard"):
        hpa = named(docs, "HorizontalPodAutoscaler", name)
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        (c,) = pod_spec(named(docs, "Deployment", name))["containers"]
        assert "cpu" in c["resources"]["requests"], f"{name}: CPU utilisation needs a CPU request"


def test_stream_workers_scale_on_lag_up_to_the_partition_count(overlay: str) -> None:
    """More workers than partitions would idle: the cap, the topic and the setting agree."""
    docs = render(overlay)
    data = config_map(docs)["data"]
    partitions = int(data["DRONETRACK_KAFKA_TOPIC_PARTITIONS"])
    so = named(docs, "ScaledObject", "streams")
    assert so["spec"]["scaleTargetRef"]["name"] == "streams"
    assert 1 <= so["spec"]["minReplicaCount"] <= so["spec"]["maxReplicaCount"] == partitions
    (trigger,) = so["spec"]["triggers"]
    meta = trigger["metadata"]
    assert meta["topic"] == topics.TELEMETRY
    assert meta["consumerGroup"] == data["DRONETRACK_STREAMS_WORKER_ID"], (
        "Faust's group is its app id"
    )
    # KEDA's operator resolves the address from its own namespace: only the fully qualified name
    # of this overlay's bootstrap Service reaches Kafka (the pods here may use the short one).
    namespace = so["metadata"]["namespace"]
    (kafka,) = of_kind(docs, "Kafka")
    short_host, _, port = data["DRONETRACK_KAFKA_BOOTSTRAP_SERVERS"].partition(":")
    assert short_host == f"{kafka['metadata']['name']}-kafka-bootstrap"
    assert meta["bootstrapServers"] == f"{short_host}.{namespace}.svc:{port}"
    # When the scaler cannot read lag, KEDA holds a known count instead of guessing.
    fallback = so["spec"]["fallback"]
    assert fallback["failureThreshold"] >= 1
    assert so["spec"]["minReplicaCount"] <= fallback["replicas"] <= partitions
    assert meta.get("allowIdleConsumers", "false") == "false"
    assert not [
        h
        for h in of_kind(docs, "HorizontalPodAutoscaler")
        if h["spec"]["scaleTargetRef"]["name"] == "streams"
    ], "KEDA owns the streams HPA; a second one would fight it"


def test_topics_are_declared_with_partitions_and_retention(overlay: str) -> None:
    docs = render(overlay)
    data = config_map(docs)["data"]
    declared = {t["spec"]["topicName"]: t for t in of_kind(docs, "KafkaTopic")}
    assert set(declared) == set(topics.ALL), "KafkaTopics differ from dronetrack/topics.py"
    for name, topic in declared.items():
        assert topic["spec"]["partitions"] == int(data["DRONETRACK_KAFKA_TOPIC_PARTITIONS"]), name
        assert topic["spec"]["replicas"] == int(data["DRONETRACK_KAFKA_REPLICATION_FACTOR"]), name
    kafka = of_kind(docs, "Kafka")
    assert len(kafka) == 1
    bootstrap = f"{kafka[0]['metadata']['name']}-kafka-bootstrap:9092"
    assert data["DRONETRACK_KAFKA_BOOTSTRAP_SERVERS"] == bootstrap, (
        "services point at Strimzi's bootstrap"
    )
    pools = of_kind(docs, "KafkaNodePool")
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    assert brokers >= int(data["DRONETRACK_KAFKA_REPLICATION_FACTOR"]), "replication beyond brokers"


def test_only_ingest_and_dashboard_are_exposed(overlay: str) -> None:
    docs = render(overlay)
    exposed = {
        path["backend"]["service"]["name"]
        for ing in of_kind(docs, "Ingress")
        for rule in ing["spec"]["rules"]
        for path in rule["http"]["paths"]
    }
    assert exposed == {"ingest", "dashboard"}
    for ing in of_kind(docs, "Ingress"):
        assert ing["spec"].get("tls"), f"Ingress/{ing['metadata']['name']} without TLS"
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                svc = named(docs, "Service", path["backend"]["service"]["name"])
                assert path["backend"]["service"]["port"]["name"] in {
                    p["name"] for p in svc["spec"]["ports"]
                }
    for svc in of_kind(docs, "Service"):
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", (
            f"Service/{svc['metadata']['name']}"
        )
    ingest_paths = {
        p["path"]
        for r in named(docs, "Ingress", "ingest")["spec"]["rules"]
        for p in r["http"]["paths"]
    }
    assert "/" not in ingest_paths, "ingest's /metrics must not be public"


def _allowed_peers(docs: tuple[Doc, ...], labels: dict[str, str], direction: str) -> list[Doc]:
    rules = []
    for np in of_kind(docs, "NetworkPolicy"):
        if matches(np["spec"]["podSelector"], labels):
            rules.extend(np["spec"].get(direction, []))
    return rules


def _peer_reaches(rule_peers: list[Doc], labels: dict[str, str]) -> bool:
    return any(
        "podSelector" in peer
        and "namespaceSelector" not in peer
        and matches(peer["podSelector"], labels)
        for peer in rule_peers
    )


def test_network_policies_deny_by_default(overlay: str) -> None:
    docs = render(overlay)
    for name in (*SERVICES, "db-migrate"):
        labels = {"app.kubernetes.io/name": name}
        deny = [
            np
            for np in of_kind(docs, "NetworkPolicy")
            if matches(np["spec"]["podSelector"], labels)
            and set(np["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not np["spec"].get("ingress")
            and not np["spec"].get("egress")
        ]
        assert deny, f"{name} is not covered by a default-deny NetworkPolicy"


@pytest.mark.parametrize(
    ("client", "store", "reach"),
    [
        ("ingest", "kafka", True),
        ("streams", "kafka", True),
        ("dashboard", "kafka", False),
        ("streams", "cassandra", True),
        ("dashboard", "cassandra", True),
        ("db-migrate", "cassandra", True),
        ("ingest", "cassandra", False),
        ("dashboard", "redis", True),
        ("ingest", "redis", False),
        ("streams", "redis", False),
        ("notifier", "kafka", True),
        ("notifier", "cassandra", True),
        ("notifier", "redis", False),
    ],
)
def test_only_the_services_that_need_a_datastore_reach_it(
    overlay: str, client: str, store: str, reach: bool
) -> None:
    docs = render(overlay)
    store_labels = {
        "kafka": {"strimzi.io/cluster": "dronetrack", "strimzi.io/kind": "Kafka"},
        "cassandra": {"cassandra.datastax.com/cluster": "dronetrack"},
        "redis": {"app.kubernetes.io/name": "redis"},
    }[store]
    client_labels = {"app.kubernetes.io/name": client}
    egress = _allowed_peers(docs, client_labels, "egress")
    out = any(_peer_reaches(rule.get("to", []), store_labels) for rule in egress)
    assert out is reach, f"{client} -> {store} egress allowed: {out}, want {reach}"
    if store == "kafka":
        # Strimzi writes the brokers' NetworkPolicy from the listener's networkPolicyPeers.
        (kafka,) = of_kind(docs, "Kafka")
        peers = [
            p
            for lst in kafka["spec"]["kafka"]["listeners"]
            for p in lst.get("networkPolicyPeers", [])
        ]
        assert peers, "Kafka listeners must restrict their peers"
        into = _peer_reaches(peers, client_labels)
    else:
        ingress = _allowed_peers(docs, store_labels, "ingress")
        into = any(_peer_reaches(rule.get("from", []), client_labels) for rule in ingress)
    assert into is reach, f"{client} -> {store} ingress allowed: {into}, want {reach}"


def test_only_ingest_and_dashboard_accept_traffic_from_outside(overlay: str) -> None:
    docs = render(overlay)
    for name in (*SERVICES, "db-migrate"):
        rules = _allowed_peers(docs, {"app.kubernetes.io/name": name}, "ingress")
        namespaces = {
            peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for rule in rules
            for peer in rule.get("from", [])
            if "namespaceSelector" in peer
        }
        for peer in (p for r in rules for p in r.get("from", [])):
            assert "ipBlock" not in peer, f"{name} admits an ipBlock"
        want = {"ingress-nginx", "monitoring"} if name in ("ingest", "dashboard") else set()
        if name in ("streams", "notifier"):
            want = {"monitoring"}
        assert namespaces == want, f"{name} admits traffic from namespaces {namespaces}"


def test_secrets_are_referenced_never_committed(overlay: str) -> None:
    docs = render(overlay)
    assert not of_kind(docs, "Secret"), "no Secret object (with values) may be committed"


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler(overlay: str) -> None:
    """A replicas field would be reset by every `kubectl apply`, undoing the autoscaler."""
    docs = render(overlay)
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")}
    scaled |= {s["spec"]["scaleTargetRef"]["name"] for s in of_kind(docs, "ScaledObject")}
    assert scaled >= set(SERVICES) - FIXED_REPLICAS
    for name in scaled:
        assert "replicas" not in named(docs, "Deployment", name)["spec"], name


def test_namespace_enforces_pod_security(overlay: str) -> None:
    (ns,) = of_kind(render(overlay), "Namespace")
    labels = ns["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] in ("baseline", "restricted")
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_every_object_is_labelled_with_its_component(overlay: str) -> None:
    """Runbooks select by app.kubernetes.io/name: every object of ours carries it, so a
    `kubectl get KIND -l app.kubernetes.io/name=NAME` finds it (and KEDA copies it to its HPA)."""
    docs = render(overlay)
    for kind in ("Deployment", "Job", "Service", "HorizontalPodAutoscaler", "ScaledObject"):
        for d in of_kind(docs, kind):
            labels = d["metadata"].get("labels", {})
            assert "app.kubernetes.io/name" in labels, f"{where(d)} lacks app.kubernetes.io/name"


def test_fixed_count_services_run_more_than_one_pod_in_prod(overlay: str) -> None:
    """Production survives a pod or node going; dev may be one node (spread: one per node)."""
    docs = render(overlay)
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(docs, "HorizontalPodAutoscaler")}
    scaled |= {s["spec"]["scaleTargetRef"]["name"] for s in of_kind(docs, "ScaledObject")}
    for name in FIXED_REPLICAS:
        assert name not in scaled, f"{name} has an autoscaler and a fixed count"
        wanted = 2 if overlay == "prod" else 1
        assert named(docs, "Deployment", name)["spec"]["replicas"] >= wanted, f"{name}: too few"


def test_only_the_notifier_leaves_the_cluster(overlay: str) -> None:
    """Webhooks go anywhere: the notifier reaches public addresses on HTTPS, HTTP and the SMTP
    port only, nothing private through that rule, and no other service has a way out at all."""
    docs = render(overlay)
    smtp_port = int(config_map(docs)["data"]["DRONETRACK_NOTIFY_SMTP_PORT"])
    for name in (*SERVICES, "db-migrate"):
        rules = _allowed_peers(docs, {"app.kubernetes.io/name": name}, "egress")
        outside = [r for r in rules if any("ipBlock" in peer for peer in r.get("to", []))]
        if name != "notifier":
            assert not outside, f"{name} may reach addresses outside the cluster"
            continue
        assert len(outside) == 1, "one rule for the way out"
        (rule,) = outside
        assert {(p["protocol"], p["port"]) for p in rule["ports"]} == {
            ("TCP", 443),
            ("TCP", 80),
            ("TCP", smtp_port),
        }
        blocks = [peer["ipBlock"] for peer in rule["to"]]
        assert all(set(peer) == {"ipBlock"} for peer in rule["to"]), "only address blocks"
        assert {b["cidr"] for b in blocks} == {"0.0.0.0/0", "::/0"}
        excepted = {c for b in blocks for c in b.get("except", [])}
        assert excepted == PRIVATE_RANGES, (
            f"private ranges not excepted: {PRIVATE_RANGES - excepted}"
        )
        others = [r for r in rules if r not in outside and r.get("to")]
        for r in others:
            assert all("ipBlock" not in peer for peer in r["to"])
        assert not [r for r in rules if not r.get("to")], "an egress rule without peers allows all"
