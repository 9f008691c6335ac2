"""What every service shares (dronetrack/web.py): aiohttp's own refusals are problem+json
like the services' errors, and no response may be sniffed into another type."""

from __future__ import annotations

from typing import Any

import pytest

from dronetrack.settings import Settings
from ingest.app import create_app as create_ingest
from streams.ops import create_app as create_ops

AiohttpClient = Any
REFUSALS = [
    ("GET", "/nothing-here", (404, "Not Found")),
    ("GET", "/v1/telemetry", (405, "Method Not Allowed")),
    ("DELETE", "/openapi.json", (405, "Method Not Allowed")),
    ("POST", "/healthz", (405, "Method Not Allowed")),
]


async def check_refusal(client: Any, method: str, path: str, status: int, title: str) -> None:
    response = await client.request(method, path)
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert await response.json() == {"type": "about:blank", "title": title, "status": status}
    if status == 405:
        assert "GET" in response.headers["Allow"] or "POST" in response.headers["Allow"]


@pytest.mark.parametrize(("method", "path", "answer"), REFUSALS)
async def test_ingest_answers_unknown_paths_and_methods_with_problems(
    aiohttp_client: AiohttpClient, settings: Settings, method: str, path: str, answer: Any
) -> None:
    client = await aiohttp_client(create_ingest(settings))
    await check_refusal(client, method, path, *answer)


async def test_ingest_json_says_nosniff(aiohttp_client: AiohttpClient, settings: Settings) -> None:
    client = await aiohttp_client(create_ingest(settings))
    for path in ("/openapi.json", "/healthz", "/metrics"):
        response = await client.get(path)
        assert response.status == 200
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    refused = await client.post("/v1/telemetry", json=[])
    assert refused.status == 401
    assert refused.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_workers_ops_server_answers_with_problems_too(
    aiohttp_client: AiohttpClient,
) -> None:
    client = await aiohttp_client(create_ops())
    await check_refusal(client, "GET", "/nothing-here", 404, "Not Found")
    await check_refusal(client, "POST", "/metrics", 405, "Method Not Allowed")
