"""The published JSON Schemas: current with the code, and telling every tool which dialect they
are written in (2020-12), so none validates them by older rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dronetrack import schemas

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# A real drone.latest.v1 value (a drone with an active alert and two drain checkpoints).
LATEST = {
    "drone_id": "sim-007",
    "ts": 1795000123000,
    "lat": 47.3769,
    "lon": 8.5417,
    "alt_m": 120.5,
    "speed_mps": 12.0,
    "heading_deg": 90.0,
    "battery_pct": 19.5,
    "status": "airborne",
    "seq": 42,
    "fleet": "demo",
    "received_at": 1795000123250,
    "active_alerts": {"battery_low": {"raised_at": 1795000122000, "detail": "battery 19.9%"}},
    "drain_checkpoints": [[1795000063000, 24.0], [1795000123000, 19.5]],
}


def published(repo_root: Path) -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in (repo_root / "docs/schemas").glob("*.json")}


def test_the_committed_documents_are_exactly_what_the_generator_writes(repo_root: Path) -> None:
    assert published(repo_root) == schemas.documents(), (
        "docs/schemas is stale: run `dronetrack schema --out docs/schemas`"
    )


def test_every_document_declares_the_2020_12_dialect_and_a_unique_id(repo_root: Path) -> None:
    docs = published(repo_root)
    assert sorted(docs) == [
        "alert-event-v1.json",
        "dead-letter-v1.headers.json",
        "flight-v1.json",
        "latest-v1.json",
        "notification-dead-letter-v1.headers.json",
        "telemetry-v1.headers.json",
        "telemetry-v1.request.json",
        "telemetry-v1.topic.json",
    ]
    assert {name: doc.get("$schema") for name, doc in docs.items()} == dict.fromkeys(docs, DIALECT)
    assert {name: doc.get("$id") for name, doc in docs.items()} == {
        "alert-event-v1.json": "urn:dronetrack:schema:alert-event-v1",
        "dead-letter-v1.headers.json": "urn:dronetrack:schema:dead-letter-v1.headers",
        "flight-v1.json": "urn:dronetrack:schema:flight-v1",
        "latest-v1.json": "urn:dronetrack:schema:latest-v1",
        "notification-dead-letter-v1.headers.json": (
            "urn:dronetrack:schema:notification-dead-letter-v1.headers"
        ),
        "telemetry-v1.headers.json": "urn:dronetrack:schema:telemetry-v1.headers",
        "telemetry-v1.request.json": "urn:dronetrack:schema:telemetry-v1.request",
        "telemetry-v1.topic.json": "urn:dronetrack:schema:telemetry-v1.topic",
    }
    for doc in docs.values():
        jsonschema.Draft202012Validator.check_schema(doc)


def test_a_tool_that_assumes_draft_07_rejects_a_valid_latest_state() -> None:
    """Why the dialect must be declared: by draft-07 rules ``prefixItems`` means nothing and
    ``items: false`` forbids every element, so each drain checkpoint is refused."""
    doc = schemas.documents()["latest-v1.json"]
    undeclared = {k: v for k, v in doc.items() if k != "$schema"}
    errors = list(jsonschema.Draft7Validator(undeclared).iter_errors(LATEST))
    assert errors, "draft-07 rules refuse the checkpoints"
    assert all(list(e.path)[:1] == ["drain_checkpoints"] for e in errors)


@pytest.mark.parametrize("name", sorted(schemas.documents()))
def test_a_tool_defaulting_to_draft_07_picks_2020_12_from_the_document(
    repo_root: Path, name: str
) -> None:
    doc = published(repo_root)[name]
    chosen = jsonschema.validators.validator_for(doc, default=jsonschema.Draft7Validator)
    assert chosen is jsonschema.Draft202012Validator


def test_a_latest_state_is_valid_by_the_dialect_its_document_declares(repo_root: Path) -> None:
    doc = published(repo_root)["latest-v1.json"]
    jsonschema.validators.validator_for(doc, default=jsonschema.Draft7Validator)(doc).validate(
        LATEST
    )


def test_the_schema_command_writes_the_documents(tmp_path: Path) -> None:
    from dronetrack.cli import main

    assert main(["schema", "--out", str(tmp_path)]) == 0
    written = {p.name: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert written == schemas.documents()


def test_the_notifiers_dead_letter_headers_are_what_the_schema_says(repo_root: Path) -> None:
    """The headers the notifier writes on drone.notifications.dlq.v1, as a consumer sees them."""
    from aiokafka import TopicPartition

    from dronetrack.events import AlertEvent
    from dronetrack.store import Channel
    from notifier.dispatch import Job, Tracker, dead_letter_headers

    channel = Channel(
        fleet="demo",
        channel_id="ops/pager",
        kind="webhook",
        target="https://example.com/hook",
        created_at=1795000000000,
    )
    event = AlertEvent(
        event="raised",
        alert_id="a-1",
        fleet="demo",
        drone_id="sim-1",
        type="battery_low",
        severity="warning",
        raised_at=1795000000000,
        at=1795000000000,
    )
    tracker = Tracker(TopicPartition("drone.alerts.v1", 3))
    job = Job(channel, event, b"{}", tracker, [41, 1], 41)
    headers = {k: v.decode() for k, v in dead_letter_headers(job, "HTTP 500", 8)}
    assert headers == {
        "dlq.reason": "HTTP 500",
        "dlq.topic": "drone.alerts.v1",
        "dlq.partition": "3",
        "dlq.offset": "41",
        "notify.channel": "demo/ops/pager",
        "notify.attempts": "8",
    }
    doc = published(repo_root)["notification-dead-letter-v1.headers.json"]
    jsonschema.Draft202012Validator(doc).validate(headers)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(doc).validate({**headers, "notify.attempts": "eight"})
