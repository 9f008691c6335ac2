"""The ingest API against a real broker: every refusal with its exact problem+json body, all or
nothing batches, NDJSON, fleet isolation, rate limits and event-time limits."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import uuid
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from dronetrack import tokens
from dronetrack.settings import Settings
from ingest.app import create_app
from tests.integration.conftest import eventually
from tests.integration.helpers import good, read_topic

AiohttpClient = Any
URL = "/v1/telemetry"
NOT_BEARER = "the Authorization header is not 'Bearer <token>'"


def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, settings: Settings, fleet_token: str
) -> TestClient[Any, Any]:
    app = create_app(settings.replace(ingest_max_body_bytes=64_000, ingest_max_batch_records=50))
    return await aiohttp_client(app)  # type: ignore[no-any-return]


async def problem_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    return body


async def test_no_token_is_401_with_a_bearer_challenge(client: TestClient[Any, Any]) -> None:
    response = await client.post(URL, json=good("d"))
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="dronetrack"'
    assert await problem_of(response, 401) == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "send 'Authorization: Bearer <fleet token>'",
    }


@pytest.mark.parametrize(
    ("header", "error", "detail"),
    [
        ("Bearer dt_not-a-token", "invalid_token", "the token is not valid"),
        (
            "Basic dXNlcjpwdw==",
            "invalid_request",
            "the Authorization header is not 'Bearer <token>'",
        ),
        ("Bearer ", "invalid_request", "the Authorization header is not 'Bearer <token>'"),
    ],
)
async def test_a_bad_token_is_401_naming_the_error(
    client: TestClient[Any, Any], header: str, error: str, detail: str
) -> None:
    response = await client.post(URL, json=good("d"), headers={"Authorization": header})
    assert response.headers["WWW-Authenticate"] == f'Bearer realm="dronetrack", error="{error}"'
    assert await problem_of(response, 401) == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": detail,
    }


async def test_an_unsupported_content_type_is_415(
    client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    headers = {**auth, "Content-Type": "text/plain"}
    response = await client.post(URL, data=json.dumps(good("d")), headers=headers)
    assert response.headers["Accept-Post"] == "application/json, application/x-ndjson"
    assert await problem_of(response, 415) == {
        "type": "about:blank",
        "title": "Unsupported media type",
        "status": 415,
        "detail": "Content-Type 'text/plain' is not supported; "
        "send one of: application/json, application/x-ndjson",
    }


TOO_LARGE = {
    "type": "about:blank",
    "title": "Body too large",
    "status": 413,
    "detail": "the body exceeds 64000 bytes",
}


async def send_a_beginning(
    client: TestClient[Any, Any], token: str, content_length: int
) -> tuple[bytes, Any]:
    """Send the headers of a POST and the first bytes of its body, no more; return the head and
    the JSON body of the answer that comes back all the same."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(
        (
            f"POST {URL} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {content_length}\r\n\r\n[{{"
        ).encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    body = json.loads(await reader.readexactly(length))
    writer.close()
    return head, body


async def test_a_declared_oversize_body_is_413_before_it_is_sent(
    client: TestClient[Any, Any], fleet_token: str
) -> None:
    """The answer comes back while the client has sent only the headers and a few bytes."""
    head, body = await send_a_beginning(client, fleet_token, content_length=100_000_000)
    assert head.startswith(b"HTTP/1.1 413 ")
    assert body == TOO_LARGE


async def test_a_chunked_oversize_body_is_413_once_it_passes_the_limit(
    client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    async def chunks() -> Any:
        for _ in range(100):
            yield b" " * 10_000

    response = await client.post(URL, data=chunks(), headers=auth)
    assert await problem_of(response, 413) == TOO_LARGE


async def test_a_body_that_trickles_in_is_408_with_connection_close(
    aiohttp_client: AiohttpClient, settings: Settings, fleet_token: str
) -> None:
    client = await aiohttp_client(create_app(settings.replace(ingest_body_timeout_s=0.2)))
    head, body = await send_a_beginning(client, fleet_token, content_length=1000)
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"\r\nConnection: close\r\n" in head
    assert body == {
        "type": "about:blank",
        "title": "Body too slow",
        "status": 408,
        "detail": "the body did not arrive within 0.2 s of the headers; nothing was accepted",
    }


async def test_too_many_records_is_413(client: TestClient[Any, Any], auth: dict[str, str]) -> None:
    batch = [good("d", i) for i in range(51)]
    response = await client.post(URL, data=json.dumps(batch), headers=auth)
    assert await problem_of(response, 413) == {
        "type": "about:blank",
        "title": "Batch too large",
        "status": 413,
        "detail": "51 records; at most 50 per request",
    }


@pytest.mark.parametrize("body", [b"", b"{", b"[1,", b"nope", b'{"drone_id": "a"'])
async def test_malformed_json_is_400(
    client: TestClient[Any, Any], auth: dict[str, str], body: bytes
) -> None:
    problem = await problem_of(await client.post(URL, data=body, headers=auth), 400)
    assert set(problem) == {"type", "title", "status", "detail"}
    assert problem["title"] == "Malformed JSON"
    assert problem["detail"]


async def test_malformed_ndjson_names_the_line(
    client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    body = json.dumps(good("d")) + "\n{oops\n"
    headers = {**auth, "Content-Type": "application/x-ndjson"}
    problem = await problem_of(await client.post(URL, data=body, headers=headers), 400)
    assert problem["detail"].startswith("record 1: ")


async def test_every_bad_record_and_field_is_listed_and_nothing_is_published(
    client: TestClient[Any, Any], auth: dict[str, str], settings: Settings
) -> None:
    drone = f"all-or-nothing-{uid()}"
    batch = [
        good(drone, 0),
        good(drone, 1, lat=91.0, battery_pct=-1),
        good(drone, 2),
        {**good(drone, 3), "fleet": "other"},
        "not a record",
    ]
    response = await client.post(URL, data=json.dumps(batch), headers=auth)
    assert await problem_of(response, 422) == {
        "type": "about:blank",
        "title": "Invalid telemetry",
        "status": 422,
        "detail": "4 problem(s) in 3 record(s); nothing was accepted",
        "errors": [
            {"index": 1, "field": "lat", "reason": "Expected `float` <= 90.0"},
            {"index": 1, "field": "battery_pct", "reason": "Expected `float` >= 0.0"},
            {"index": 3, "field": "fleet", "reason": "unknown field"},
            {"index": 4, "field": "", "reason": "expected a JSON object"},
        ],
    }
    # A marker after the refused batch: same key, same partition, so once the marker is on the
    # topic anything of the refused batch would be too.
    marker = good(drone, 9)
    assert (await client.post(URL, data=json.dumps(marker), headers=auth)).status == 202
    on_topic = await read_topic(settings, lambda r: r.drone_id == drone)
    assert [r.seq for r, _ in on_topic] == [9]


async def test_an_empty_batch_is_422(client: TestClient[Any, Any], auth: dict[str, str]) -> None:
    problem = await problem_of(await client.post(URL, data="[]", headers=auth), 422)
    assert problem["errors"] == [{"index": None, "field": "", "reason": "the batch is empty"}]


async def test_event_time_too_far_ahead_is_422(
    client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    future = good("d", ts=good("d")["ts"] + 3_600_000)
    response = await client.post(URL, data=json.dumps([good("d"), future]), headers=auth)
    problem = await problem_of(response, 422)
    [error] = problem["errors"]
    assert (error["index"], error["field"]) == (1, "ts")
    assert error["reason"].startswith("more than 60000 ms ahead of the server's clock (")
    response = await client.post(URL, data=json.dumps(future), headers=auth)
    problem = await problem_of(response, 422)
    [error] = problem["errors"]
    assert (error["index"], error["field"]) == (None, "ts")
    assert error["reason"].startswith("more than 60000 ms ahead of the server's clock (")


async def test_very_old_records_are_marked_late_by_default(
    client: TestClient[Any, Any], auth: dict[str, str], settings: Settings
) -> None:
    drone = f"late-{uid()}"
    old = good(drone, 0, ts=1_000_000_000_000)  # 2001
    response = await client.post(URL, data=json.dumps([old, good(drone, 1)]), headers=auth)
    assert response.status == 202
    assert await response.json() == {"accepted": 2, "late": 1}
    on_topic = await read_topic(settings, lambda r: r.drone_id == drone)
    assert [(r.seq, h.get("dronetrack-late")) for r, h in on_topic] == [(0, b"1"), (1, None)]


async def test_very_old_records_are_refused_when_so_configured(
    aiohttp_client: AiohttpClient, settings: Settings, auth: dict[str, str]
) -> None:
    app = create_app(settings.replace(ingest_old_records="reject", ingest_max_age_ms=86_400_000))
    client = await aiohttp_client(app)
    old = good("d", ts="2001-09-09T01:46:40Z")
    response = await client.post(URL, data=json.dumps([good("d"), old]), headers=auth)
    problem = await problem_of(response, 422)
    assert problem["errors"] == [{"index": 1, "field": "ts", "reason": "older than 86400000 ms"}]


async def test_ndjson_is_accepted_and_kept_in_order(
    client: TestClient[Any, Any], auth: dict[str, str], settings: Settings
) -> None:
    drone = f"ndjson-{uid()}"
    body = "\n".join(json.dumps(good(drone, i)) for i in range(5)) + "\n\n"
    headers = {**auth, "Content-Type": "application/x-ndjson; charset=utf-8"}
    response = await client.post(URL, data=body, headers=headers)
    assert response.status == 202, await response.text()
    assert await response.json() == {"accepted": 5, "late": 0}
    on_topic = await read_topic(settings, lambda r: r.drone_id == drone)
    assert [r.seq for r, _ in on_topic] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-15)),  # raw deflate, as some send
    ],
)
async def test_a_compressed_body_is_inflated_and_published(
    client: TestClient[Any, Any],
    auth: dict[str, str],
    settings: Settings,
    coding: str,
    compress: Callable[[bytes], bytes],
) -> None:
    drone = f"{coding}-{uid()}"
    body = json.dumps([good(drone, i) for i in range(3)]).encode()
    headers = {**auth, "Content-Type": "application/json", "Content-Encoding": coding}
    response = await client.post(URL, data=compress(body), headers=headers)
    assert response.status == 202, await response.text()
    on_topic = await read_topic(settings, lambda r: r.drone_id == drone)
    assert [r.seq for r, _ in on_topic] == [0, 1, 2]


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, gzip", "compress"])
async def test_a_content_coding_not_taken_is_415(
    client: TestClient[Any, Any], auth: dict[str, str], coding: str
) -> None:
    headers = {**auth, "Content-Type": "application/json", "Content-Encoding": coding}
    response = await client.post(URL, data=json.dumps(good("d")), headers=headers)
    assert response.headers["Accept-Encoding"] == "gzip, deflate"
    assert await problem_of(response, 415) == {
        "type": "about:blank",
        "title": "Unsupported content coding",
        "status": 415,
        "detail": f"Content-Encoding {coding!r} is not supported; send the body as is or with "
        "one of: gzip, deflate",
    }


@pytest.mark.parametrize(
    "body",
    [b"plain JSON, not gzip", gzip.compress(json.dumps(good("d")).encode())[:-8]],
    ids=["not-gzip", "truncated"],
)
async def test_a_body_that_is_not_the_gzip_it_claims_is_400(
    client: TestClient[Any, Any], auth: dict[str, str], body: bytes
) -> None:
    headers = {**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = await client.post(URL, data=body, headers=headers)
    assert await problem_of(response, 400) == {
        "type": "about:blank",
        "title": "Malformed body",
        "status": 400,
        "detail": "the body is not valid gzip",
    }


async def test_a_compressed_body_is_413_by_what_it_inflates_to(
    client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    """20 MiB of spaces gzip to ~20 kB, well under the 64,000-byte limit as sent."""
    bomb = gzip.compress(b" " * (20 * 1024 * 1024), 9)
    assert len(bomb) < 64_000
    headers = {**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = await client.post(URL, data=bomb, headers=headers)
    assert await problem_of(response, 413) == TOO_LARGE


async def test_tokens_added_or_revoked_in_the_file_count_without_a_restart(
    aiohttp_client: AiohttpClient, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "tokens"
    old = tokens.create(path, "fleet-old")
    client = await aiohttp_client(
        create_app(settings.replace(ingest_tokens_file=path, ingest_tokens_reload_s=0.05))
    )

    async def status_with(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return (await client.post(URL, json=good(f"rot-{uid()}", 0), headers=headers)).status

    def refusals(count: int) -> Callable[[], Awaitable[bool]]:
        async def counted() -> bool:
            text = await (await client.get("/metrics")).text()
            return f'ingest_token_file_reloads_total{{outcome="refused"}} {count:.1f}' in text

        return counted

    assert await status_with(old) == 202
    new = tokens.create(path, "fleet-new")
    await eventually(lambda: _is(status_with(new), 202), what="the added token to be taken")
    tokens.revoke(path, old)
    await eventually(lambda: _is(status_with(old), 401), what="the revoked token to be refused")
    path.write_text(path.read_text() + "fleet-x not-a-digest\n")  # a bad edit
    await eventually(refusals(1), what="the malformed file to be refused")
    assert await status_with(new) == 202  # the tokens as they were
    assert await status_with(old) == 401
    path.write_bytes(b"\xff\xfe not text")
    await eventually(refusals(2), what="the unreadable file to be refused")
    assert await status_with(new) == 202


async def _is(status: Awaitable[int], wanted: int) -> bool:
    return await status == wanted


async def test_a_fleet_token_cannot_write_as_another_fleet(
    aiohttp_client: AiohttpClient, settings: Settings, auth: dict[str, str]
) -> None:
    token_a = tokens.create(settings.ingest_tokens_file, "fleet-a")
    client = await aiohttp_client(create_app(settings))
    headers = {**auth, "Authorization": f"Bearer {token_a}"}
    drone = f"iso-{uid()}"
    claims_b = {**good(drone, 0), "fleet": "fleet-b"}
    problem = await problem_of(await client.post(URL, json=claims_b, headers=headers), 422)
    assert problem["errors"] == [{"index": None, "field": "fleet", "reason": "unknown field"}]
    assert (await client.post(URL, json=good(drone, 1), headers=headers)).status == 202
    assert (await client.post(URL, json=good(drone, 2), headers=auth)).status == 202
    on_topic = await read_topic(settings, lambda r: r.drone_id == drone)
    assert [(r.seq, r.fleet) for r, _ in on_topic] == [(1, "fleet-a"), (2, settings.default_fleet)]


async def test_a_fleet_over_its_rate_is_429_with_retry_after(
    aiohttp_client: AiohttpClient, settings: Settings, auth: dict[str, str]
) -> None:
    limited = settings.replace(
        ingest_rate_limit_rps=1.0, ingest_rate_limit_burst=10, ingest_max_batch_records=10
    )
    client = await aiohttp_client(create_app(limited))
    batch = json.dumps([good(f"rate-{uid()}", i) for i in range(8)])
    assert (await client.post(URL, data=batch, headers=auth)).status == 202
    response = await client.post(URL, data=batch, headers=auth)
    assert int(response.headers["Retry-After"]) >= 6  # 6 more records at 1 record/s
    assert await problem_of(response, 429) == {
        "type": "about:blank",
        "title": "Too many records",
        "status": 429,
        "detail": f"fleet {settings.default_fleet!r} is over its rate limit; nothing was accepted",
    }


async def test_metrics_count_records_by_outcome(
    client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    await client.post(URL, data=json.dumps([good(f"m-{uid()}", i) for i in range(3)]), headers=auth)
    await client.post(URL, data="{", headers=auth)
    text = await (await client.get("/metrics")).text()
    assert 'ingest_records_accepted_total{fleet="demo"} 3.0' in text
    assert 'ingest_requests_rejected_total{reason="malformed"} 1.0' in text
    assert "ingest_batch_records_bucket" in text
    assert "ingest_publish_duration_seconds_bucket" in text
    assert "http_requests_in_flight" in text


@pytest.mark.parametrize("content_type", ["application/json", "application/x-ndjson"])
async def test_json_nested_a_thousand_deep_is_400(
    client: TestClient[Any, Any], auth: dict[str, str], content_type: str
) -> None:
    body = b"[" * 1000 + b"]" * 1000  # 2 kB
    headers = {**auth, "Content-Type": content_type}
    problem = await problem_of(await client.post(URL, data=body, headers=headers), 400)
    assert problem["title"] == "Malformed JSON"
    assert problem["detail"].endswith("the JSON is nested too deeply: a record is one flat object")


async def test_a_token_of_bytes_that_are_not_utf8_is_401(client: TestClient[Any, Any]) -> None:
    reader, writer = await asyncio.open_connection(client.host, client.port)
    body = json.dumps(good("d")).encode()
    writer.write(
        f"POST {URL} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n".encode()
        + b"Authorization: Bearer \xff\xfe\r\n\r\n"
        + body
    )
    await writer.drain()
    head, _, rest = (await asyncio.wait_for(reader.read(), 10)).partition(b"\r\n\r\n")
    writer.close()
    assert head.startswith(b"HTTP/1.1 401 ")
    assert b"\r\nContent-Type: application/problem+json" in head
    assert json.loads(rest) == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "the token is not valid",
    }


def members(drone: str, first: bytes) -> bytes:
    """A record's JSON, written by hand so that ``first`` may repeat a member."""
    rest = json.dumps({k: v for k, v in good(drone).items() if k not in ("drone_id", "lat")})
    return b"{" + first + b", " + rest[1:].encode()


@pytest.mark.parametrize(
    ("first", "field"),
    [
        (b'"drone_id": "D", "lat": 91, "lat": 1', "lat"),
        (b'"drone_id": "<script>", "drone_id": "D", "lat": 1', "drone_id"),
    ],
)
async def test_a_duplicate_key_is_422_naming_it_in_a_record_a_batch_and_ndjson(
    client: TestClient[Any, Any],
    auth: dict[str, str],
    settings: Settings,
    first: bytes,
    field: str,
) -> None:
    drone = f"dup-{uid()}"
    one = members(drone, first.replace(b'"D"', json.dumps(drone).encode()))
    fine = json.dumps(good(drone, 5)).encode()
    for body, content_type, index in [
        (one, "application/json", None),
        (b"[" + fine + b"," + one + b"]", "application/json", 1),
        (fine + b"\n" + one + b"\n", "application/x-ndjson", 1),
    ]:
        headers = {**auth, "Content-Type": content_type}
        response = await client.post(URL, data=body, headers=headers)
        assert await problem_of(response, 422) == {
            "type": "about:blank",
            "title": "Invalid telemetry",
            "status": 422,
            "detail": "1 problem(s) in 1 record(s); nothing was accepted",
            "errors": [
                {
                    "index": index,
                    "field": field,
                    "reason": "duplicate key: each member may appear only once",
                }
            ],
        }
    marker = good(drone, 9)
    assert (await client.post(URL, data=json.dumps(marker), headers=auth)).status == 202
    on_topic = await read_topic(settings, lambda r: r.drone_id == drone)
    assert [r.seq for r, _ in on_topic] == [9]


async def test_a_multi_member_gzip_body_is_inflated_whole(
    client: TestClient[Any, Any], auth: dict[str, str], settings: Settings
) -> None:
    """RFC 1952: a gzip file is a series of members, as ``cat a.gz b.gz`` makes one."""
    drone = f"members-{uid()}"
    lines = [json.dumps(good(drone, i)).encode() + b"\n" for i in range(3)]
    body = b"".join(gzip.compress(line) for line in lines)
    headers = {**auth, "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
    response = await client.post(URL, data=body, headers=headers)
    assert response.status == 202, await response.text()
    assert await response.json() == {"accepted": 3, "late": 0}
    on_topic = await read_topic(settings, lambda r: r.drone_id == drone)
    assert [r.seq for r, _ in on_topic] == [0, 1, 2]


async def test_gzip_members_are_413_by_what_they_inflate_to_together(
    client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    """Each member inflates to 40,000 bytes, under the 64,000-byte limit; two do not."""
    member = gzip.compress(b" " * 40_000)
    headers = {**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = await client.post(URL, data=member * 2, headers=headers)
    assert await problem_of(response, 413) == TOO_LARGE


async def test_gzip_followed_by_anything_but_a_member_is_400(
    client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    body = gzip.compress(json.dumps(good("d")).encode()) + b"trailing"
    headers = {**auth, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    problem = await problem_of(await client.post(URL, data=body, headers=headers), 400)
    assert problem["detail"] == "the body is not valid gzip"


@pytest.mark.parametrize(
    ("scale", "unit", "fix"),
    [
        (1 / 1000, "seconds", "multiply by 1000"),
        (1000, "microseconds", "divide by 1000"),
        (1_000_000, "nanoseconds", "divide by 1000000"),
    ],
)
async def test_a_ts_in_another_unit_is_422_naming_the_unit(
    client: TestClient[Any, Any], auth: dict[str, str], scale: float, unit: str, fix: str
) -> None:
    """Epoch seconds were taken as a time in January 1970, marked late and never shown."""
    ms = good("d")["ts"] // 1000 * 1000  # whole seconds
    when = datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    record = good(f"unit-{uid()}", ts=int(ms * scale))
    problem = await problem_of(await client.post(URL, json=record, headers=auth), 422)
    [error] = problem["errors"]
    assert (error["index"], error["field"]) == (None, "ts")
    assert error["reason"].endswith(
        f"this looks like epoch {unit} ({when}): ts is in epoch milliseconds, {fix}"
    )


async def test_a_ts_ahead_of_the_clock_is_422_saying_what_the_clock_says(
    client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    record = good("d", ts=good("d")["ts"] + 3_600_000)
    problem = await problem_of(await client.post(URL, json=record, headers=auth), 422)
    [error] = problem["errors"]
    match = re.fullmatch(
        r"more than 60000 ms ahead of the server's clock \((\S+)\)", error["reason"]
    )
    assert match, error["reason"]
    said = datetime.fromisoformat(match[1])
    assert before <= said <= datetime.now(UTC)


async def test_ndjson_sent_without_its_newlines_is_400_pointing_at_data_binary(
    client: TestClient[Any, Any], auth: dict[str, str]
) -> None:
    """``curl -d @file`` drops a file's newlines; ``--data-binary @file`` keeps them."""
    body = "".join(json.dumps(good("d", i)) for i in range(2))
    headers = {**auth, "Content-Type": "application/x-ndjson"}
    problem = await problem_of(await client.post(URL, data=body, headers=headers), 400)
    assert problem["detail"].startswith("record 0: JSON is malformed: trailing characters")
    assert problem["detail"].endswith(
        "; NDJSON needs a newline after each record: curl -d removes newlines, "
        "send the body with --data-binary"
    )


async def test_history_is_taken_however_old_and_marked_as_history(
    aiohttp_client: AiohttpClient, settings: Settings, auth: dict[str, str]
) -> None:
    """An imported flight log is history on purpose (docs/integrations.md): taken even where old
    records are refused, not counted late, and marked so the worker keeps it out of live state."""
    app = create_app(settings.replace(ingest_old_records="reject", ingest_max_age_ms=86_400_000))
    client = await aiohttp_client(app)
    drone = f"hist-{uid()}"
    records = [good(drone, 0, ts=1_764_000_000_000), good(drone, 1, ts=1_764_000_001_000)]
    headers = {**auth, "Dronetrack-Backfill": "1"}
    response = await client.post(URL, data=json.dumps(records), headers=headers)
    assert response.status == 202, await response.text()
    assert await response.json() == {"accepted": 2, "late": 0}
    on_topic = await read_topic(settings, lambda r: r.drone_id == drone)
    assert [(r.seq, dict(h)) for r, h in on_topic] == [
        (0, {"dronetrack-backfill": b"1"}),
        (1, {"dronetrack-backfill": b"1"}),
    ]
    text = await (await client.get("/metrics")).text()
    assert "ingest_records_backfill_total 2.0" in text
    ahead = good(drone, 2, ts=good(drone)["ts"] + 3_600_000)
    response = await client.post(URL, json=ahead, headers=headers)
    assert (await problem_of(response, 422))["errors"][0]["field"] == "ts"
    response = await client.post(
        URL, json=good(drone, 3), headers={**auth, "Dronetrack-Backfill": "yes"}
    )
    problem = await problem_of(response, 400)
    assert problem["detail"] == "Dronetrack-Backfill must be 1 (history) or absent"
