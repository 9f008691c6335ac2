"""Telemetry record v1: the one schema for the HTTP API and the ``drone.telemetry.v1`` topic.

The msgspec structs below are the single source of truth: the fast decoder validates with them,
the detailed error report re-checks each field against the same annotated types, and the
published JSON Schema is generated from them (``dronetrack schema``).

Decisions, stated once:
- Unknown fields are rejected, so a typo (``batery_pct``) is an error rather than silent data loss.
- ``ts`` is accepted as epoch milliseconds or RFC 3339 with a zone, and is always epoch
  milliseconds on the topic and in the store (millisecond precision).
- ``ts`` and ``seq`` are integers, and JSON has one kind of number: ``5.0`` is the integer 5 to
  JSON Schema, so it is taken as 5 (a fraction is refused).
- The fleet comes from the caller's credentials, and ``received_at`` from the server; a body that
  carries either is rejected as an unknown field.
- A member may appear only once in a record (RFC 8259 leaves duplicates to the parser; msgspec,
  like most, keeps the last): a record that says two things about a field is refused, so that no
  two readers of the same bytes can disagree about what was sent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, Struct

DRONE_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
DroneId = Annotated[
    str, Meta(pattern=DRONE_ID_PATTERN, description="1-64 characters of [A-Za-z0-9._-]")
]
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
EpochMs = Annotated[int, Meta(ge=0, le=MAX_EPOCH_MS, description="Unix epoch milliseconds")]
ZonedTime = Annotated[datetime, Meta(tz=True, description="RFC 3339 date-time with a zone")]
Latitude = Annotated[float, Meta(ge=-90.0, le=90.0)]
Longitude = Annotated[float, Meta(ge=-180.0, le=180.0)]
Altitude = Annotated[float, Meta(ge=-1_000.0, le=100_000.0, description="metres above MSL")]
Speed = Annotated[float, Meta(ge=0.0, le=1_000.0, description="ground speed, m/s")]
Heading = Annotated[float, Meta(ge=0.0, lt=360.0, description="degrees clockwise from north")]
Battery = Annotated[float, Meta(ge=0.0, le=100.0, description="percent")]
Accuracy = Annotated[float, Meta(ge=0.0, le=100_000.0, description="metres, 95% bound")]
VerticalSpeed = Annotated[float, Meta(ge=-1_000.0, le=1_000.0, description="m/s, up positive")]
Seq = Annotated[int, Meta(ge=0, le=2**63 - 1, description="per-drone counter")]
# Operational status as in ASTM F3411 Remote ID.
Status = Literal["undeclared", "ground", "airborne", "emergency", "system_failure"]


class TelemetryIn(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """One status report as a drone sends it."""

    drone_id: DroneId
    ts: EpochMs | ZonedTime
    lat: Latitude
    lon: Longitude
    alt_m: Altitude
    speed_mps: Speed
    heading_deg: Heading
    battery_pct: Battery
    status: Status | None = None
    seq: Seq | None = None
    vertical_speed_mps: VerticalSpeed | None = None
    h_accuracy_m: Accuracy | None = None
    v_accuracy_m: Accuracy | None = None

    def __post_init__(self) -> None:
        ts = self.ts
        if type(ts) is not int:
            self.ts = epoch_ms(ts) if isinstance(ts, datetime) else whole(ts)
        if type(self.seq) is float:
            self.seq = whole(self.seq)


def whole(number: float) -> int:
    """A JSON number written with a point, as the integer it must be."""
    if not number.is_integer():
        raise ValueError("must be a whole number")
    return int(number)


# A time taken in another unit is plausible if it lands in this century (see ``unit_hint``).
_PLAUSIBLE_MS = (946_684_800_000, 4_102_444_800_000)  # 2000-01-01, 2100-01-01
_UNITS = (  # unit, to milliseconds (multiply, divide), what to tell the sender
    ("seconds", 1000, 1, "multiply by 1000"),
    ("microseconds", 1, 1000, "divide by 1000"),
    ("nanoseconds", 1, 1_000_000, "divide by 1000000"),
)


def iso(ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC, for messages."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def unit_hint(ts: int) -> str | None:
    """What a ``ts`` that is wrong as epoch milliseconds most likely is: epoch seconds,
    microseconds or nanoseconds of this century, the usual slips of a clock API. None if it is
    none of them."""
    for unit, multiply, divide, fix in _UNITS:
        ms = ts * multiply // divide
        if _PLAUSIBLE_MS[0] <= ms < _PLAUSIBLE_MS[1]:
            return f"this looks like epoch {unit} ({iso(ms)}): ts is in epoch milliseconds, {fix}"
    return None


def epoch_ms(ts: datetime) -> int:
    """An RFC 3339 time as epoch ms, held to the same range as an epoch-ms ``ts`` (msgspec
    reports the ValueError as a validation error of the record)."""
    ms = round(ts.timestamp() * 1000)
    if not 0 <= ms <= MAX_EPOCH_MS:
        raise ValueError("must be between 1970-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z")
    return ms


class Telemetry(TelemetryIn, kw_only=True, forbid_unknown_fields=False, omit_defaults=True):
    """A validated record as it travels on ``drone.telemetry.v1`` (unknown fields tolerated, so
    consumers survive additive changes)."""

    ts: EpochMs
    fleet: str
    received_at: EpochMs


def is_newer(rec: Telemetry, prev: Telemetry) -> bool:
    """The order of a drone's records: event time, then ``seq`` (a record without one sorts
    first). A drone's latest state only ever moves to a newer record."""
    seq, prev_seq = -1 if rec.seq is None else rec.seq, -1 if prev.seq is None else prev.seq
    return (rec.ts, seq) > (prev.ts, prev_seq)


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason a record was refused. ``index`` is the record's position in a batch."""

    index: int | None
    field: str
    reason: str


class RecordsInvalid(ValueError):
    """The body parsed as JSON but some records break the schema; ``errors`` lists every one."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(f"{len(errors)} invalid field(s)")
        self.errors = errors


class MalformedBody(ValueError):
    """The body is not JSON at all."""


TOO_DEEP = "the JSON is nested too deeply: a record is one flat object"
DUPLICATE = "duplicate key: each member may appear only once"
_RUN_TOGETHER = "trailing characters"  # msgspec's words for a second document after the first


class _FastIn(TelemetryIn, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The hot path's decoding type: ``drone_id`` checked for length here and for its
    characters by ``_valid_drone_id`` (cached: a fleet's ids repeat), because msgspec's
    per-string regex costs more than all other checks of a record together. Anything it lets
    through that the schema refuses is caught there and explained by the full schema."""

    drone_id: Annotated[str, Meta(min_length=1, max_length=64)]
    # 5.0 for an integer (see the module's decisions), made an int by __post_init__.
    ts: EpochMs | Annotated[float, Meta(ge=0, le=MAX_EPOCH_MS)] | ZonedTime  # type: ignore[assignment]
    seq: Seq | Annotated[float, Meta(ge=0, lt=2**63)] | None = None  # type: ignore[assignment]


_DRONE_ID = re.compile(DRONE_ID_PATTERN.removeprefix("^").removesuffix("$"))  # for fullmatch
_known_ids: set[str] = set()  # drone ids seen valid; a fleet's ids repeat


def _checked(records: list[_FastIn]) -> list[TelemetryIn]:
    known = _known_ids
    for r in records:
        if r.drone_id not in known:
            break
    else:  # the usual case: every id seen before
        return records  # type: ignore[return-value]  # list is invariant; _FastIn is a TelemetryIn
    new = {r.drone_id for r in records} - known
    if not all(_DRONE_ID.fullmatch(i) for i in new):
        raise msgspec.ValidationError("drone_id")
    if len(known) > 100_000:
        known.clear()
    known.update(new)
    return records  # type: ignore[return-value]


_fast = msgspec.json.Decoder(_FastIn | list[_FastIn])
_one = msgspec.json.Decoder(_FastIn)
_topic_decoder = msgspec.json.Decoder(Telemetry)
_encoder = msgspec.json.Encoder()
_FIELDS = {f.encode_name: f for f in msgspec.structs.fields(TelemetryIn)}
_WHOLE = {f.encode_name: f.type for f in msgspec.structs.fields(_FastIn) if f.name in ("ts", "seq")}
_field_decoders = {
    name: msgspec.json.Decoder(_WHOLE.get(name, f.type)) for name, f in _FIELDS.items()
}


def decode_request(body: bytes) -> list[TelemetryIn]:
    """Parse one record or a JSON array of records; raise with every problem on failure."""
    try:
        parsed = _fast.decode(body)
        records = _checked(parsed if isinstance(parsed, list) else [parsed])
    except msgspec.ValidationError:
        raise RecordsInvalid(explain(body)) from None
    except msgspec.DecodeError as exc:
        detail = str(exc)
        if _RUN_TOGETHER in detail:
            detail += (
                "; several records go in a JSON array, or one per line as application/x-ndjson"
            )
        raise MalformedBody(detail) from None
    except RecursionError:
        raise MalformedBody(TOO_DEEP) from None
    _check_unique(body, records)
    return records


def decode_ndjson(body: bytes) -> list[TelemetryIn]:
    """Parse newline-delimited records (blank lines skipped); a record's index is its position
    among the non-blank lines. A line that is not JSON makes the whole body malformed."""
    lines = [line for line in body.split(b"\n") if line.strip()]
    try:
        records = _checked([_one.decode(line) for line in lines])
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        pass
    else:
        _check_unique(body, records, lines)
        return records
    docs = []
    for index, line in enumerate(lines):
        try:
            docs.append(_parse(line))
        except MalformedBody as exc:
            detail = f"record {index}: {exc}"
            if _RUN_TOGETHER in detail:
                detail += (
                    "; NDJSON needs a newline after each record: curl -d removes newlines, "
                    "send the body with --data-binary"
                )
            raise MalformedBody(detail) from None
    raise RecordsInvalid([e for i, doc in enumerate(docs) for e in _explain_one(i, doc)])


_REQUIRED = sum(f.required for f in msgspec.structs.fields(TelemetryIn))
_SPACED_NAME_END = re.compile(rb'"[ \t\r\n]+:')


def _optional_set(r: TelemetryIn) -> int:
    """How many optional members ``r`` has, by name: a tenth of the cost of any generic way.
    One left out here would only send its records down the slow path (and fail a test)."""
    return (
        (r.status is not None)
        + (r.seq is not None)
        + (r.vertical_speed_mps is not None)
        + (r.h_accuracy_m is not None)
        + (r.v_accuracy_m is not None)
    )


def _check_unique(
    body: bytes, records: list[TelemetryIn], lines: list[bytes] | None = None
) -> None:
    """Refuse decoded records of which a member appeared twice in ``body`` (msgspec keeps the
    last silently), without parsing it again in the usual case. Counting what ends a member's
    name (its colon; or a quote, maybe whitespace, and a colon) gives at least the number of
    members in the body: anything else so counted is inside a string value. If that equals the
    members the records have set, none repeats. A count that disagrees is settled by the slow
    path, which parses the body member by member."""
    members = _REQUIRED * len(records) + (
        _optional_set(records[0]) if len(records) == 1 else sum(map(_optional_set, records))
    )
    # Every member has a colon after its name, so when a body has no other colon (none in a
    # string: epoch-ms times) one byte count settles it; otherwise count the names themselves.
    if body.count(b":") == members or (
        body.count(b'":') + len(_SPACED_NAME_END.findall(body)) == members
    ):
        return
    # A member written as null counts in the body, not in the records; the standard library's
    # parser settles it (a few times the cost of the counts, far less than explaining).
    try:
        for text in (body,) if lines is None else lines:
            json.loads(text, object_pairs_hook=_unique)
        return
    except (_Repeated, ValueError, RecursionError):
        pass
    if lines is None:
        errors = explain(body)
    else:
        errors = [e for i, line in enumerate(lines) for e in _explain_one(i, _parse(line))]
    if errors:
        raise RecordsInvalid(errors)


class _Repeated(Exception):
    """A JSON object names a member twice."""


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) < len(pairs):
        raise _Repeated
    return obj


class _Members(dict[str, Any]):
    """A JSON object as parsed for ``explain``: its members, last value winning, and the names
    that appeared more than once."""

    duplicates: list[str]


def _members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = _Members(pairs)
    obj.duplicates = []
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen and name not in obj.duplicates:
                obj.duplicates.append(name)
            seen.add(name)
    return obj


def _parse(text: bytes) -> Any:
    """One JSON document for the slow path, its objects as ``_Members``. msgspec judges whether
    it is JSON, so every path refuses the same bodies; the standard library's parser then reads
    it again, because only it shows an object member by member."""
    try:
        msgspec.json.decode(text)
        return json.loads(text, object_pairs_hook=_members)
    except msgspec.DecodeError as exc:
        raise MalformedBody(str(exc)) from None
    except RecursionError:
        raise MalformedBody(TOO_DEEP) from None
    except ValueError as exc:  # what msgspec takes but the standard library does not
        raise MalformedBody(str(exc)) from None


def explain(body: bytes) -> list[FieldError]:
    """The slow path: check each record and field on its own to report all errors at once."""
    doc = _parse(body)
    if isinstance(doc, dict):
        return _explain_one(None, doc)
    if isinstance(doc, list):
        return [e for i, item in enumerate(doc) for e in _explain_one(i, item)]
    return [FieldError(None, "", "expected a JSON object or an array of objects")]


def _explain_one(index: int | None, item: Any) -> list[FieldError]:
    if not isinstance(item, dict):
        return [FieldError(index, "", "expected a JSON object")]
    errors = [FieldError(index, key, DUPLICATE) for key in getattr(item, "duplicates", ())]
    errors += [FieldError(index, key, "unknown field") for key in item if key not in _FIELDS]
    for name, info in _FIELDS.items():
        if name not in item:
            if info.required:
                errors.append(FieldError(index, name, "required field is missing"))
            continue
        try:
            value = _field_decoders[name].decode(_encoder.encode(item[name]))
            if isinstance(value, datetime):
                epoch_ms(value)
            elif isinstance(value, float) and name in _WHOLE:
                whole(value)
            # Python's `$` also matches before a final newline; JSON Schema's does not.
            if name == "drone_id" and not _DRONE_ID.fullmatch(value):
                raise ValueError(f"Expected `str` matching regex {DRONE_ID_PATTERN!r}")
        except msgspec.ValidationError as exc:
            reason = str(exc).removesuffix(" - at `$`")
            number = item[name] if type(item[name]) in (int, float) else None
            hint = unit_hint(int(number)) if name == "ts" and number is not None else None
            errors.append(FieldError(index, name, f"{reason}; {hint}" if hint else reason))
        except ValueError as exc:
            errors.append(FieldError(index, name, str(exc)))
    return errors


def to_topic(record: TelemetryIn, fleet: str, received_at: int) -> Telemetry:
    """Stamp the server-side fields onto a validated record."""
    return Telemetry(**msgspec.structs.asdict(record), fleet=fleet, received_at=received_at)


def encode(record: Telemetry) -> bytes:
    return _encoder.encode(record)


def topic_suffix(fleet: str, received_at: int) -> bytes:
    """The server-side members of the topic form, once per request (see ``encode_for_topic``)."""
    return b',"fleet":' + _encoder.encode(fleet) + b',"received_at":%d}' % received_at


def encode_for_topic(record: TelemetryIn, suffix: bytes) -> bytes:
    """``encode(to_topic(record, fleet, received_at))`` on ingest's hot path: the record's JSON
    with ``topic_suffix`` spliced in before the closing brace, several times cheaper than
    building a ``Telemetry`` per record."""
    return _encoder.encode(record)[:-1] + suffix


def decode_topic(value: bytes) -> Telemetry:
    return _topic_decoder.decode(value)


def json_schemas() -> dict[str, dict[str, Any]]:
    """The published schemas: the request body and the topic value."""
    return {
        "telemetry-v1.request.json": msgspec.json.schema(TelemetryIn | list[TelemetryIn]),
        "telemetry-v1.topic.json": msgspec.json.schema(Telemetry),
    }
