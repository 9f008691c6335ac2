"""The ingest service as a running process, held to its contract: no input crashes it, every
accepted record reaches the topic unchanged, and Schemathesis finds no response that
contradicts ``/openapi.json``."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dronetrack.settings import Settings
from tests.integration.helpers import ingest_process, read_topic

CHECKS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def ingest_url(
    settings: Settings, fleet_token: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One ingest process for the module, without the limits that a schema cannot express (a
    rate, and event times relative to the clock), so that every answer is about the input."""
    log = tmp_path_factory.mktemp("contract") / "ingest.log"
    unlimited = settings.replace(
        ingest_rate_limit_rps=0.0, ingest_max_future_ms=10**15, ingest_max_age_ms=10**15
    )
    with ingest_process(unlimited, log) as (url, _):
        yield url


def post(url: str, body: bytes, content_type: str | None, token: str) -> tuple[int, Any]:
    request = urllib.request.Request(f"{url}/v1/telemetry", data=body, method="POST")  # noqa: S310
    request.add_header("Authorization", f"Bearer {token}")
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, (response.headers.get_content_type(), response.read())
    except urllib.error.HTTPError as error:
        return error.code, (error.headers.get_content_type(), error.read())


NOW = datetime.now(UTC)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=20,
)
FIELDS = ["drone_id", "ts", "lat", "lon", "alt_m", "speed_mps", "heading_deg", "battery_pct"]


def floats(lo: float, hi: float, *, exclude_max: bool = False) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, exclude_max=exclude_max)


def timestamps() -> st.SearchStrategy[int | str]:
    """Event times within the accepted window, as epoch ms or RFC 3339 with any offset."""
    epoch_ms = st.integers(int(NOW.timestamp() * 1000) - 3_600_000, int(NOW.timestamp() * 1000))
    zoned = st.builds(
        lambda ms, minutes: datetime.fromtimestamp(
            ms / 1000, timezone(timedelta(minutes=minutes))
        ).isoformat(),
        epoch_ms,
        st.integers(-12 * 60, 14 * 60),
    )
    return epoch_ms | zoned


def records(drone_id: str) -> st.SearchStrategy[dict[str, Any]]:
    optional = {
        "status": st.sampled_from(["undeclared", "ground", "airborne", "emergency"]),
        "seq": st.integers(0, 2**63 - 1),
        "vertical_speed_mps": floats(-1000, 1000),
        "h_accuracy_m": floats(0, 100_000),
        "v_accuracy_m": floats(0, 100_000),
    }
    return st.fixed_dictionaries(
        {
            "drone_id": st.just(drone_id),
            "ts": timestamps(),
            "lat": floats(-90, 90),
            "lon": floats(-180, 180),
            "alt_m": floats(-1000, 100_000),
            "speed_mps": floats(0, 1000),
            "heading_deg": floats(0, 360, exclude_max=True),
            "battery_pct": floats(0, 100),
        },
        optional=optional,
    )


# Almost-records: the right keys with arbitrary values, some keys missing, some extra.
almost = st.dictionaries(st.sampled_from([*FIELDS, "seq", "fleet", "extra"]), json_values)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    almost.map(lambda v: json.dumps(v).encode()),
    st.lists(almost | records("prop-any"), max_size=5).map(lambda v: json.dumps(v).encode()),
    st.lists(almost | records("prop-any"), max_size=5).map(
        lambda v: "\n".join(json.dumps(x) for x in v).encode()
    ),
)
content_types = st.sampled_from(
    [None, "application/json", "application/x-ndjson", "text/plain", "application/json; x=1"]
)


def test_no_input_crashes_the_handler(ingest_url: str, fleet_token: str) -> None:
    @CHECKS
    @given(body=bodies, content_type=content_types)
    def check(body: bytes, content_type: str | None) -> None:
        status, (media_type, raw) = post(ingest_url, body, content_type, fleet_token)
        assert status in {202, 400, 413, 415, 422}, raw
        if status != 202:
            assert media_type == "application/problem+json"
            doc = json.loads(raw)
            assert doc["status"] == status
            assert {"type", "title", "status"} <= set(doc)

    check()


async def test_accepted_records_reach_the_topic_unchanged(
    ingest_url: str, fleet_token: str, settings: Settings
) -> None:
    sent: dict[str, list[dict[str, Any]]] = {}
    serial = iter(range(10**6))

    @CHECKS
    @given(data=st.data(), ndjson=st.booleans())
    def check(data: st.DataObject, ndjson: bool) -> None:
        drone = f"prop-{next(serial)}-{NOW.timestamp():.0f}"
        batch = data.draw(st.lists(records(drone), min_size=1, max_size=20))
        if ndjson:
            body, content_type = "\n".join(map(json.dumps, batch)), "application/x-ndjson"
        else:
            body, content_type = json.dumps(batch), "application/json"
        status, (_, raw) = post(ingest_url, body.encode(), content_type, fleet_token)
        assert status == 202, raw
        sent[drone] = batch

    check()  # the hypothesis run is synchronous; the topic is read once afterwards
    on_topic: dict[str, list[dict[str, Any]]] = {}
    for value, _ in await read_topic(settings, lambda r: r.drone_id in sent):
        doc = msgspec.structs.asdict(value)
        assert doc.pop("fleet") == settings.default_fleet
        assert doc.pop("received_at") > 0
        on_topic.setdefault(value.drone_id, []).append(doc)
    for drone, batch in sent.items():
        assert on_topic[drone] == [expected(r) for r in batch]


def expected(doc: dict[str, Any]) -> dict[str, Any]:
    """What the topic should hold for a posted record: ts as epoch ms, absent options null."""
    out = {k: None for k in ("status", "seq", "vertical_speed_mps", "h_accuracy_m", "v_accuracy_m")}
    out.update(doc)
    if isinstance(doc["ts"], str):
        out["ts"] = round(datetime.fromisoformat(doc["ts"]).timestamp() * 1000)
    return out


def operations(url: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def test_responses_match_the_openapi_document(ingest_url: str, fleet_token: str) -> None:
    """Schemathesis' generated requests (valid and invalid) against every operation, with all
    its checks. (Its pytest plugin does not run on this pytest, so its strategies are used
    directly.)"""
    headers = {"Authorization": f"Bearer {fleet_token}"}
    for operation in operations(ingest_url):

        @settings(max_examples=60, deadline=None)
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            case.call_and_validate(headers=headers)

        check()


def test_the_document_is_the_served_one(ingest_url: str, repo_root: Path) -> None:
    with urllib.request.urlopen(f"{ingest_url}/openapi.json") as response:  # noqa: S310
        doc = json.load(response)
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]["/v1/telemetry"]["post"]["responses"]) == {
        "202",
        "400",
        "401",
        "408",
        "413",
        "415",
        "422",
        "429",
        "503",
    }
