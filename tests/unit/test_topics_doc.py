"""docs/topics.md, the analysts' contract, says what the code does: keys, headers, schemas and
one deduplication rule everywhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dronetrack import schemas, topics


@pytest.fixture
def doc(repo_root: Path) -> str:
    return (repo_root / "docs" / "topics.md").read_text()


def catalogue(doc: str) -> dict[str, list[str]]:
    """The topic table's rows: topic -> its cells."""
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `drone."):
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_the_catalogue_lists_every_topic_with_the_key_the_code_writes(doc: str) -> None:
    assert {t: cells[0] for t, cells in catalogue(doc).items()} == {
        "drone.telemetry.v1": "`drone_id`",
        "drone.alerts.v1": "`drone_id`",
        "drone.latest.v1": "`fleet/drone_id`",
        "drone.telemetry.dlq.v1": "original key",
        "drone.notifications.dlq.v1": "`fleet/alert_id/event/channel_id`",
        "drone.flights.v1": "`fleet/drone_id`",
    }
    assert set(catalogue(doc)) == set(topics.ALL)
    assert topics.KEYS == {
        topics.TELEMETRY: "drone_id",
        topics.ALERTS: "drone_id",
        topics.LATEST: "fleet/drone_id",
        topics.DEAD_LETTER: "the original record's key",
        topics.NOTIFY_DEAD_LETTER: "fleet/alert_id/event/channel_id",
        topics.FLIGHTS: "fleet/drone_id",
    }


@pytest.mark.parametrize(
    "header",
    [
        topics.LATE_HEADER,
        topics.DLQ_REASON,
        topics.DLQ_TOPIC,
        topics.DLQ_PARTITION,
        topics.DLQ_OFFSET,
        topics.NOTIFY_CHANNEL,
        topics.NOTIFY_ATTEMPTS,
    ],
)
def test_every_header_is_documented(doc: str, header: str) -> None:
    assert f"`{header}`" in doc


def test_every_published_schema_is_linked(doc: str) -> None:
    for name in schemas.documents():
        if name != "telemetry-v1.request.json":  # the HTTP body: docs/ingest.md
            assert f"(schemas/{name})" in doc, name


def test_the_deduplication_rule_is_the_same_wherever_it_is_given(repo_root: Path) -> None:
    texts = {
        path.name: path.read_text()
        for path in [
            repo_root / "docs" / "topics.md",
            repo_root / "docs" / "streams.md",
            repo_root / "docs" / "schemas" / "alert-event-v1.json",
        ]
    }
    rules = {
        (name, re.sub(r"[`*\s]", "", rule))
        for name, text in texts.items()
        for rule in re.findall(r"deduplicate\**\s+on\s+(\([^)]*\))", text.replace("\\n", " "))
    }
    assert {name for name, _ in rules} == set(texts), "each gives the rule"
    assert {rule for _, rule in rules} == {"(fleet,alert_id,event)"}


def test_the_consumer_example_deduplicates_by_the_documented_rule(doc: str) -> None:
    example = doc.split("```python", 1)[1].split("```", 1)[0]
    assert 'key = (alert["fleet"], alert["alert_id"], alert["event"])' in example
    assert 'alert["alert_id"], alert["event"])' not in example.replace(
        'alert["fleet"], alert["alert_id"], alert["event"])', ""
    )


def test_the_versioning_policy_is_written_down_and_owns_up_to_the_key_change(doc: str) -> None:
    policy = doc.split("## Versioning", 1)[1].split("\n## ", 1)[0]
    for needed in ("within `v1`", "`v2`", "drone.latest.v1", "`drone_id`", "`fleet/drone_id`"):
        assert needed in policy, needed
