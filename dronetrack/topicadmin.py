"""``dronetrack kafka create-topics``: the project's topics, created as documented (partitions,
replicas, configs: ``dronetrack.kafka.topic_specs``) where missing, and drift on those that exist
reported, never corrected: changing a live topic's partitions or cleanup policy moves drones
between partitions or loses state, an operator's decision (docs/operations.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from dronetrack import kafka
from dronetrack.kafka import TopicSpec
from dronetrack.settings import Settings, SettingsError

OK, DRIFT = 0, 1
FAILED = 2


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topics = sub.add_parser("kafka", help="Kafka administration")
    kafka_sub = topics.add_subparsers(dest="kafka_command", required=True)
    create = kafka_sub.add_parser(
        "create-topics",
        help="create the missing topics as documented; report drift on existing ones "
        "(exit 1), never change them",
    )
    create.add_argument("--dry-run", action="store_true", help="report only, create nothing")
    create.add_argument(
        "--allow-drift", action="store_true", help="exit 0 even when a topic differs"
    )


@dataclass(frozen=True)
class Found:
    """A topic as the cluster has it."""

    partitions: int
    replicas: int
    configs: dict[str, str]


@dataclass
class Row:
    spec: TopicSpec
    found: Found | None
    state: str = ""
    drift: list[str] = field(default_factory=list)


def differences(spec: TopicSpec, found: Found) -> list[str]:
    """What differs from the documented topic, one line each."""
    out = []
    if found.partitions != spec.partitions:
        out.append(f"partitions: {found.partitions}, documented {spec.partitions}")
    if found.replicas != spec.replicas:
        out.append(f"replicas: {found.replicas}, documented {spec.replicas}")
    for key, want in spec.configs.items():
        have = found.configs.get(key)
        if have != want:
            out.append(f"{key}: {'(not set)' if have is None else have}, documented {want}")
    return out


async def inspect(client: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, Found]:
    """The topics of ``names`` that exist. Existence comes from the list of every topic: a
    metadata request naming a missing topic creates it where auto-creation is on."""
    existing = set(await client.list_topics())
    present = [name for name in names if name in existing]
    if not present:
        return {}
    described = {t["topic"]: t for t in await client.describe_topics(present)}
    configs: dict[str, dict[str, str]] = {}
    for response in await client.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in present]
    ):
        for resource in response.to_object()["resources"]:
            configs[resource["resource_name"]] = {
                e["config_names"]: e["config_value"] for e in resource["config_entries"]
            }
    found = {}
    for name in present:
        partitions = described[name]["partitions"]
        found[name] = Found(
            partitions=len(partitions),
            replicas=max((len(p["replicas"]) for p in partitions), default=0),
            configs=configs.get(name, {}),
        )
    return found


async def create_topics(settings: Settings, dry_run: bool) -> list[Row]:
    specs = kafka.topic_specs(settings)
    client = kafka.admin(settings)
    await client.start()
    try:
        found = await inspect(client, [s.name for s in specs])
        rows = [Row(spec, found.get(spec.name)) for spec in specs]
        missing = [row.spec for row in rows if row.found is None]
        if missing and not dry_run:
            await kafka.create_topics(client, missing)
    finally:
        await client.close()
    for row in rows:
        if row.found is None:
            row.state = "would create" if dry_run else "created"
        else:
            row.drift = differences(row.spec, row.found)
            row.state = "DRIFT" if row.drift else "ok"
    return rows


def table(rows: Sequence[Row]) -> str:
    """One line per topic (what it has, or will have once created), then every difference."""
    lines = [("TOPIC", "STATE", "PARTITIONS", "REPLICAS")]
    for row in rows:
        has = row.found or Found(row.spec.partitions, row.spec.replicas, row.spec.configs)
        lines.append((row.spec.name, row.state, str(has.partitions), str(has.replicas)))
    widths = [max(len(line[i]) for line in lines) for i in range(3)]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(line[:3], widths, strict=True)) + "  " + line[3]
        for line in lines
    ]
    drifted = [(row.spec.name, d) for row in rows for d in row.drift]
    if drifted:
        text += ["", "Drift (left as it is; see docs/operations.md, 'Kafka topics'):"]
        text += [f"  {name}  {what}" for name, what in drifted]
    return "\n".join(text)


def summary(rows: Sequence[Row]) -> str:
    counts = {state: sum(r.state == state for r in rows) for state in {r.state for r in rows}}
    if set(counts) == {"ok"}:
        return "nothing to do: every topic exists as documented"
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def kafka_command(args: argparse.Namespace, settings: Settings) -> int:
    try:
        rows = asyncio.run(create_topics(settings, args.dry_run))
    except SettingsError as exc:
        print(f"dronetrack: {exc}", file=sys.stderr)
        return FAILED
    except KafkaError as exc:
        print(f"dronetrack: Kafka at {settings.kafka_bootstrap_servers}: {exc!r}", file=sys.stderr)
        return FAILED
    print(table(rows))
    print(summary(rows))
    if any(row.drift for row in rows) and not args.allow_drift:
        return DRIFT
    return OK
