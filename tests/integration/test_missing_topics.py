"""A service started before its topics exist (a real cluster with auto-creation off, before
`dronetrack kafka create-topics`) stays up and unready, naming the topics and the command in its
/readyz and its log, creates nothing behind the operator's back, and turns ready once the topics
exist."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from dronetrack import kafka, processes, tokens, topics
from dronetrack.broker import EmbeddedBroker, free_port
from dronetrack.settings import Settings
from ingest.app import create_app
from tests.integration.conftest import eventually
from tests.integration.helpers import good
from tests.integration.kafka_bare import bare_broker, topic_names  # noqa: F401 - a fixture

AiohttpClient = Any
COMMAND = "dronetrack kafka create-topics"


async def test_ingest_waits_unready_for_its_topic(
    bare_broker: EmbeddedBroker,  # noqa: F811 - first: torn down after the client
    aiohttp_client: AiohttpClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = bare_broker.settings.replace(ingest_tokens_file=tmp_path / "tokens")
    token = tokens.create(settings.ingest_tokens_file, "waiting")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    client = await aiohttp_client(create_app(settings))

    response = await client.get("/readyz")
    assert response.status == 503
    failing = (await response.json())["failing"]
    assert topics.TELEMETRY in failing["topics"], failing
    assert COMMAND in failing["topics"], failing
    assert any(
        topics.TELEMETRY in r.getMessage() and COMMAND in r.getMessage() for r in caplog.records
    ), [r.getMessage() for r in caplog.records]

    refused = await client.post("/v1/telemetry", data=json.dumps([good("w-1")]), headers=headers)
    assert refused.status == 503, await refused.text()
    assert refused.headers["Retry-After"] == "2"
    assert topics.TELEMETRY not in await topic_names(settings), "ingest created its topic"

    await kafka.ensure_topics(settings)

    async def ready() -> bool:
        return (await client.get("/readyz")).status == 200

    await eventually(ready, timeout=30, what="ingest ready once its topic exists")
    accepted = await client.post("/v1/telemetry", data=json.dumps([good("w-1")]), headers=headers)
    assert accepted.status == 202, await accepted.text()


@pytest.fixture
def lone_worker(
    bare_broker: EmbeddedBroker,  # noqa: F811
    tmp_path: Path,
) -> Iterator[tuple[Settings, str, Path]]:
    """A stream worker of its own on the bare broker: settings, ops URL, log file."""
    settings = bare_broker.settings.replace(
        sqlite_path=tmp_path / "store.sqlite3",
        streams_data_dir=tmp_path / "streams",
        streams_web_port=free_port(),
        log_dir=tmp_path / "log",
    )
    log = tmp_path / "streams.log"
    with log.open("ab") as out:
        proc = processes.spawn(
            [sys.executable, "-m", "streams"], env={**os.environ, **settings.to_env()}, output=out
        )
    try:
        yield settings, f"http://127.0.0.1:{settings.streams_web_port}", log
    finally:
        code = processes.stop(proc, 30.0)
    assert code == 0, f"worker exited with {code}; log: {log}"


async def readyz(url: str) -> tuple[int, dict[str, Any]] | None:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
            http.get(f"{url}/readyz") as response,
        ):
            return response.status, await response.json()
    except (aiohttp.ClientError, TimeoutError):
        return None  # not listening yet


async def test_the_worker_waits_unready_for_its_topics(
    lone_worker: tuple[Settings, str, Path],
) -> None:
    settings, url, log = lone_worker

    async def reports_topics() -> tuple[int, dict[str, Any]] | None:
        answer = await readyz(url)
        named = answer and topics.TELEMETRY in answer[1]["failing"].get("topics", "")
        return answer if named else None

    status, body = await eventually(reports_topics, timeout=90, what="/readyz naming topics")
    assert status == 503
    for name in topics.PIPELINE:
        assert name in body["failing"]["topics"], body
    assert COMMAND in body["failing"]["topics"], body
    logged = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(topics.TELEMETRY in e["msg"] and COMMAND in e["msg"] for e in logged), logged
    assert not set(topics.ALL) & await topic_names(settings), "the worker created a topic"

    await kafka.ensure_topics(settings)

    async def ready() -> bool:
        answer = await readyz(url)
        return answer is not None and answer[0] == 200

    await eventually(ready, timeout=60, what="worker ready once its topics exist")
