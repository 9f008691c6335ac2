"""The telemetry record v1: what is accepted, and what every refusal says."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from dronetrack import record, schemas
from dronetrack.record import FieldError, MalformedBody, RecordsInvalid

GOOD: dict[str, Any] = {
    "drone_id": "alpha-1",
    "ts": 1_767_225_600_000,
    "lat": 47.37,
    "lon": 8.54,
    "alt_m": 120.5,
    "speed_mps": 12.0,
    "heading_deg": 271.5,
    "battery_pct": 88.0,
}


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def errors_of(doc: Any) -> list[FieldError]:
    with pytest.raises(RecordsInvalid) as caught:
        record.decode_request(body(doc))
    return caught.value.errors


def test_a_valid_record_decodes_with_all_its_values() -> None:
    [rec] = record.decode_request(body(GOOD))
    assert {k: getattr(rec, k) for k in GOOD} == GOOD


def test_an_array_decodes_in_order() -> None:
    recs = record.decode_request(body([GOOD, {**GOOD, "drone_id": "beta"}]))
    assert [r.drone_id for r in recs] == ["alpha-1", "beta"]


def test_optional_fields_are_kept() -> None:
    extra = {
        "status": "airborne",
        "seq": 7,
        "vertical_speed_mps": -1.5,
        "h_accuracy_m": 3.0,
        "v_accuracy_m": 4.5,
    }
    [rec] = record.decode_request(body({**GOOD, **extra}))
    assert {k: getattr(rec, k) for k in extra} == extra


@pytest.mark.parametrize(
    ("ts", "epoch_ms"),
    [
        ("2026-01-01T00:00:00Z", 1_767_225_600_000),
        ("2026-01-01T01:00:00.250+01:00", 1_767_225_600_250),
        (1_767_225_600_123, 1_767_225_600_123),
    ],
)
def test_ts_accepts_rfc3339_and_epoch_ms_and_normalises_to_epoch_ms(ts: Any, epoch_ms: int) -> None:
    [rec] = record.decode_request(body({**GOOD, "ts": ts}))
    assert rec.ts == epoch_ms


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("drone_id", "", "matching regex"),
        ("drone_id", "x" * 65, "matching regex"),
        ("drone_id", "has space", "matching regex"),
        ("drone_id", "slash/no", "matching regex"),
        ("drone_id", 42, "Expected `str`"),
        ("ts", "2026-01-01T00:00:00", "timezone"),
        ("ts", "yesterday", "Invalid RFC3339"),
        ("ts", -1, ">= 0"),
        ("ts", True, "got `bool`"),
        ("lat", 90.0001, "<= 90.0"),
        ("lat", -90.0001, ">= -90.0"),
        ("lat", "47.3", "Expected `float`"),
        ("lon", 180.5, "<= 180.0"),
        ("lon", -181, ">= -180.0"),
        ("alt_m", 100_001, "<= 100000.0"),
        ("alt_m", None, "got `null`"),
        ("speed_mps", -0.1, ">= 0.0"),
        ("heading_deg", 360, "< 360.0"),
        ("heading_deg", -1, ">= 0.0"),
        ("battery_pct", 100.5, "<= 100.0"),
        ("battery_pct", -3, ">= 0.0"),
        ("status", "flying", "Invalid enum value 'flying'"),
        ("seq", -1, ">= 0"),
        ("seq", 1.5, "must be a whole number"),
        ("h_accuracy_m", -2, ">= 0.0"),
        ("vertical_speed_mps", 5000, "<= 1000.0"),
    ],
)
def test_each_bad_field_is_named_with_its_reason(field: str, value: Any, reason: str) -> None:
    [error] = errors_of({**GOOD, field: value})
    assert (error.index, error.field) == (None, field)
    assert reason in error.reason


@pytest.mark.parametrize("value", [0, 0.0, 90, -90, 359.999])
def test_bounds_are_inclusive_where_the_schema_says_so(value: float) -> None:
    doc = {**GOOD, "lat": max(-90.0, min(90.0, value)), "heading_deg": abs(value) % 360}
    assert record.decode_request(body(doc))


@pytest.mark.parametrize(
    "missing", ["drone_id", "ts", "lat", "lon", "alt_m", "speed_mps", "heading_deg", "battery_pct"]
)
def test_a_missing_required_field_is_named(missing: str) -> None:
    doc = {k: v for k, v in GOOD.items() if k != missing}
    assert errors_of(doc) == [FieldError(None, missing, "required field is missing")]


@pytest.mark.parametrize("unknown", ["batery_pct", "fleet", "received_at"])
def test_unknown_fields_are_rejected_including_server_side_ones(unknown: str) -> None:
    assert errors_of({**GOOD, unknown: 1}) == [FieldError(None, unknown, "unknown field")]


def test_every_problem_of_every_record_is_reported_at_once() -> None:
    batch = [GOOD, {**GOOD, "lat": 91, "battery_pct": -1}, "nope", {"drone_id": "x"}]
    errors = errors_of(batch)
    assert [(e.index, e.field) for e in errors] == [
        (1, "lat"),
        (1, "battery_pct"),
        (2, ""),
        (3, "ts"),
        (3, "lat"),
        (3, "lon"),
        (3, "alt_m"),
        (3, "speed_mps"),
        (3, "heading_deg"),
        (3, "battery_pct"),
    ]
    assert errors[2].reason == "expected a JSON object"


def test_a_body_that_is_neither_object_nor_array_is_refused() -> None:
    assert errors_of(17) == [FieldError(None, "", "expected a JSON object or an array of objects")]


@pytest.mark.parametrize("raw", [b"", b"{", b"{'single': 'quotes'}", b"[1,]", b"\xff"])
def test_malformed_json_is_its_own_error(raw: bytes) -> None:
    with pytest.raises(MalformedBody):
        record.decode_request(raw)


def test_topic_form_round_trips_and_carries_fleet_and_received_at() -> None:
    [rec] = record.decode_request(body({**GOOD, "seq": 3}))
    on_topic = record.to_topic(rec, fleet="f1", received_at=1_767_225_600_500)
    decoded = record.decode_topic(record.encode(on_topic))
    assert decoded == on_topic
    assert (decoded.fleet, decoded.received_at, decoded.seq) == ("f1", 1_767_225_600_500, 3)


def test_topic_consumers_tolerate_fields_added_later() -> None:
    value = json.loads(record.encode(record.to_topic(record.decode_request(body(GOOD))[0], "f", 1)))
    assert record.decode_topic(body({**value, "added_in_v1_1": True})).drone_id == "alpha-1"


def test_published_schemas_match_the_code(repo_root: Any) -> None:
    for name in record.json_schemas():
        published = json.loads((repo_root / "docs" / "schemas" / name).read_text())
        assert published == schemas.documents()[name], (
            f"docs/schemas/{name} is stale: run `dronetrack schema --out docs/schemas`"
        )


@pytest.mark.parametrize("ts", ["1969-12-31T23:59:59Z", "0001-01-01T00:00:00+00:00"])
def test_rfc3339_times_before_1970_are_refused_like_negative_epochs(ts: str) -> None:
    reason = "must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z"
    assert errors_of({**GOOD, "ts": ts}) == [FieldError(None, "ts", reason)]


def test_ndjson_decodes_line_by_line_and_indexes_by_line() -> None:
    lines = [body(GOOD), b"", body({**GOOD, "lat": 99}), b"  ", body({**GOOD, "x": 1})]
    with pytest.raises(RecordsInvalid) as caught:
        record.decode_ndjson(b"\n".join(lines))
    assert [(e.index, e.field) for e in caught.value.errors] == [(1, "lat"), (2, "x")]
    assert len(record.decode_ndjson(b"\n".join([body(GOOD), b"", body(GOOD)]))) == 2


@pytest.mark.parametrize("raw", [b"0\x00", b'{"a": 1}\n{', b"[1]\nnull x"])
def test_an_ndjson_line_that_is_not_json_is_malformed(raw: bytes) -> None:
    with pytest.raises(MalformedBody, match="record"):
        record.decode_ndjson(raw)


@pytest.mark.parametrize("drone_id", ["abc\n", "a b", "x" * 65, ""])
def test_a_drone_id_outside_its_alphabet_is_refused_even_with_a_trailing_newline(
    drone_id: str,
) -> None:
    for decode in (record.decode_request, record.decode_ndjson):
        with pytest.raises(RecordsInvalid) as caught:
            decode(body({**GOOD, "drone_id": drone_id}))
        assert [e.field for e in caught.value.errors] == ["drone_id"]


def test_the_fast_topic_encoding_equals_the_topic_form() -> None:
    for doc in (GOOD, {**GOOD, "seq": 3, "status": "airborne", "ts": "2026-01-01T00:00:00Z"}):
        [rec] = record.decode_request(body(doc))
        fast = record.encode_for_topic(rec, record.topic_suffix('f"1', 1_767_225_600_500))
        assert fast == record.encode(record.to_topic(rec, 'f"1', 1_767_225_600_500))


FIELDS_JSON = (
    b'"ts": 1767225600000, "lon": 8.54, "alt_m": 120.5, "speed_mps": 12.0, '
    b'"heading_deg": 271.5, "battery_pct": 88.0'
)
DEEP = [
    b"[" * 1000 + b"]" * 1000,
    b"{" + b'"a": {' * 1000 + b"}" * 1001,
    b'{"drone_id": ' + b"[" * 5000 + b"]" * 5000 + b"}",
]


@pytest.mark.parametrize("raw", DEEP, ids=["arrays", "objects", "in-a-field"])
def test_json_nested_too_deeply_is_malformed_not_a_crash(raw: bytes) -> None:
    for decode in (record.decode_request, record.decode_ndjson):
        with pytest.raises(MalformedBody, match="nested too deeply"):
            decode(raw)


def rec(members: bytes) -> bytes:
    """A record's JSON with ``members`` (raw, so that a key may repeat) before the rest."""
    return b"{" + members + b", " + FIELDS_JSON + b"}"


DUPLICATE = "duplicate key: each member may appear only once"


@pytest.mark.parametrize(
    ("members", "field"),
    [
        (b'"lat": 91, "lat": 1, "drone_id": "a"', "lat"),  # the first value breaks the schema
        (b'"drone_id": "<script>", "drone_id": "ok", "lat": 1', "drone_id"),  # the last is fine
        (b'"drone_id": "a", "lat": 1, "lat": 1', "lat"),  # the same value twice
        (b'"drone_id": "a", "lat" : 1, "lat"\t:2', "lat"),  # spaced as JSON allows
        (b'"drone_id": "a", "lat": 1, "l\\u0061t": 2', "lat"),  # the same name, escaped
        (b'"drone_id": "a", "lat": 1, "status": null, "status": "ground"', "status"),
    ],
    ids=["invalid-then-valid", "script-then-ok", "same-value", "spaced", "escaped", "null-first"],
)
def test_a_duplicate_key_is_refused_naming_it_on_every_path(members: bytes, field: str) -> None:
    one = rec(members)
    good = rec(b'"drone_id": "b", "lat": 2')
    cases = [
        (record.decode_request, one, None),
        (record.decode_request, b"[" + good + b", " + one + b"]", 1),
        (record.decode_ndjson, good + b"\n" + one + b"\n", 1),
    ]
    for decode, raw, index in cases:
        with pytest.raises(RecordsInvalid) as caught:
            decode(raw)
        assert caught.value.errors == [FieldError(index, field, DUPLICATE)]


def test_members_spelled_alike_in_values_are_no_duplicates() -> None:
    """A value may look like a key (a drone named "lat") without being one."""
    [one] = record.decode_request(rec(b'"drone_id": "lat", "lat": 1, "status": "ground"'))
    assert (one.drone_id, one.lat, one.status) == ("lat", 1.0, "ground")
    escaped = rec(b'"drone_id": "\\u0061b", "lat": 1')
    assert [r.drone_id for r in record.decode_request(escaped)] == ["ab"]
    assert [r.drone_id for r in record.decode_ndjson(escaped)] == ["ab"]


@pytest.mark.parametrize(
    ("ts", "hint"),
    [
        (
            1_764_621_911_123_456,
            "this looks like epoch microseconds (2025-12-01T20:45:11.123Z): "
            "ts is in epoch milliseconds, divide by 1000",
        ),
        (
            1_764_621_911_123_456_789,
            "this looks like epoch nanoseconds (2025-12-01T20:45:11.123Z): "
            "ts is in epoch milliseconds, divide by 1000000",
        ),
    ],
)
def test_a_ts_in_micro_or_nanoseconds_is_refused_naming_the_unit(ts: int, hint: str) -> None:
    assert errors_of({**GOOD, "ts": ts}) == [
        FieldError(None, "ts", f"Expected `int` <= 253402300799999; {hint}")
    ]


@pytest.mark.parametrize(
    ("ts", "unit"),
    [
        (
            1_764_621_911,
            "this looks like epoch seconds (2025-12-01T20:45:11.000Z): "
            "ts is in epoch milliseconds, multiply by 1000",
        ),
        (1_764_621_911_123, None),  # milliseconds: right
        (1_000_000_000_000, None),  # 2001 in milliseconds: old, not a unit mistake
        (5_000, None),  # 1970 whatever the unit
        (10**18 * 9, None),  # nanoseconds of 2255: not a time this system sees
    ],
)
def test_unit_hint_names_the_unit_a_ts_plausibly_is_in(ts: int, unit: str | None) -> None:
    assert record.unit_hint(ts) == unit


def test_json_records_run_together_hint_at_an_array_or_ndjson() -> None:
    with pytest.raises(MalformedBody) as caught:
        record.decode_request(body(GOOD) + body(GOOD))
    assert str(caught.value).endswith(
        "; several records go in a JSON array, or one per line as application/x-ndjson"
    )


def test_ndjson_without_its_newlines_hints_at_data_binary() -> None:
    """What ``curl -d @file.ndjson`` sends: the file with its newlines removed."""
    with pytest.raises(MalformedBody) as caught:
        record.decode_ndjson(body(GOOD) + body(GOOD) + b"\n")
    assert str(caught.value) == (
        "record 0: JSON is malformed: trailing characters (byte 150); NDJSON needs a newline "
        "after each record: curl -d removes newlines, send the body with --data-binary"
    )


def test_ts_and_seq_written_with_a_point_are_the_integers_json_schema_says_they_are() -> None:
    """JSON has one kind of number; JSON Schema counts 5.0 as an integer, and so does the API."""
    doc = {**GOOD, "ts": 1_767_225_600_123.0, "seq": 7.0}
    for decode in (record.decode_request, record.decode_ndjson):
        [rec] = decode(body(doc))
        assert (rec.ts, rec.seq) == (1_767_225_600_123, 7)
        assert (type(rec.ts), type(rec.seq)) == (int, int)
    assert b'"ts":1767225600123,' in record.encode_for_topic(rec, b"}")


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("ts", 1_767_225_600_123.5, "must be a whole number"),
        ("seq", 7.25, "must be a whole number"),
        ("seq", 2.0**63, "Expected `float` < 9.223372036854776e+18"),
        (
            "ts",
            1.0e15,
            "Expected `float` <= 253402300799999.0; this looks like epoch "
            "microseconds (2001-09-09T01:46:40.000Z): ts is in epoch milliseconds, divide by 1000",
        ),
    ],
)
def test_a_number_with_a_fraction_or_out_of_range_is_refused(
    field: str, value: float, reason: str
) -> None:
    assert errors_of({**GOOD, field: value}) == [FieldError(None, field, reason)]


def test_records_without_repeats_never_take_the_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast check counts every optional member by name: one it missed would send every
    record that sets it down a slower path. Members written as null take the middle one (the
    standard library's parser), never the slowest."""

    def slow(*_: object) -> None:
        raise AssertionError("the slow path ran")

    monkeypatch.setattr(record, "explain", slow)
    monkeypatch.setattr(record, "_parse", slow)
    optional = {
        f.encode_name: {"status": "ground"}.get(f.encode_name, 1)
        for f in msgspec.structs.fields(record.TelemetryIn)
        if not f.required
    }
    everything = {**GOOD, **optional}
    nulls = {**GOOD, **dict.fromkeys(optional)}  # as serialisers write what is not set
    spaced = json.dumps(everything, separators=(" , ", " : ")).encode()

    def both(raw: bytes) -> None:
        assert record.decode_request(raw)
        assert record.decode_ndjson(
            raw.replace(b"[", b"").replace(b"]", b"").replace(b"}, {", b"}\n{")
        )

    both(body(nulls))
    monkeypatch.setattr(record, "_unique", slow)
    for raw in (
        body(everything),
        body([GOOD, everything]),
        spaced,
        body({**GOOD, "ts": "2026-01-01T00:00:00+01:00"}),
    ):
        both(raw)
