"""Reading and decoding a telemetry request body, with every limit checked as early as it can be:
the declared length before a byte is read, the running length while streaming, the record count
and the event times after decoding."""

from __future__ import annotations

import asyncio
import zlib

from aiohttp import web

from dronetrack import record
from dronetrack.record import FieldError, TelemetryIn
from ingest import problems

BACKFILL = "Dronetrack-Backfill"

JSON = "application/json"
NDJSON = "application/x-ndjson"
MEDIA_TYPES = (JSON, NDJSON)
ENCODINGS = ("gzip", "deflate")  # request content codings, undone by ``inflate``


async def read(request: web.Request, max_bytes: int, timeout_s: float) -> bytes:
    """The body as sent, refused with 413 as soon as it is known to be too large (from
    ``Content-Length`` before a byte is read, or while a chunked body streams in), and with 408
    if it takes longer than ``timeout_s`` to arrive."""
    length = request.content_length
    if length is not None:
        if length > max_bytes:
            raise problems.body_too_large(max_bytes)
        content = request.content
        if content.is_eof():  # all of it arrived with the headers: the usual small request
            return content.read_nowait()
    try:
        async with asyncio.timeout(timeout_s):
            if length is not None:
                return await request.read()
            chunks, size = [], 0  # chunked transfer: count while streaming
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > max_bytes:
                    raise problems.body_too_large(max_bytes)
                chunks.append(chunk)
            return b"".join(chunks)
    except TimeoutError:
        raise problems.body_timeout(timeout_s) from None


def content_coding(request: web.Request) -> str | None:
    """The body's content coding, if it has one this service undoes; 415 for any other."""
    given = request.headers.get("Content-Encoding")
    if given is None:
        return None
    coding = given.strip().lower()
    if coding == "identity":
        return None
    if coding not in ENCODINGS:
        raise problems.unsupported_encoding(given, ENCODINGS)
    return coding


def inflate(raw: bytes, coding: str, max_bytes: int) -> bytes:
    """Undo gzip or deflate, stopping at ``max_bytes`` of output: a small compressed body can
    inflate a thousandfold, so the limit is on what it inflates to. (The server's own
    decompression is off: it would inflate a refused request's unread body while draining it.)
    A gzip body may be several members one after another (RFC 1952), as ``cat a.gz b.gz``
    makes; they inflate to one body, under one limit.
    """
    # deflate is the zlib format (RFC 9110); some clients send raw deflate, so that is tried too.
    for wbits in (31,) if coding == "gzip" else (15, -15):
        out: list[bytes] = []
        rest, size = raw, 0
        try:
            while True:
                inflater = zlib.decompressobj(wbits)
                out.append(inflater.decompress(rest, max_bytes + 1 - size))
                size += len(out[-1])
                if size > max_bytes:
                    raise problems.body_too_large(max_bytes)
                rest = inflater.unused_data
                if not inflater.eof or not rest or wbits != 31:
                    break
        except zlib.error:
            continue
        if inflater.eof and not rest:
            return b"".join(out)
    raise problems.undecodable(coding)


def check_media_type(request: web.Request) -> str:
    given = request.headers.get("Content-Type", "(none)")
    if given in MEDIA_TYPES:  # as clients send it: nothing to parse
        return given
    if request.content_type not in MEDIA_TYPES:
        raise problems.unsupported_media_type(given, MEDIA_TYPES)
    return request.content_type


def decode(body: bytes, media_type: str, max_records: int) -> list[TelemetryIn]:
    """All records of the body, or a 400/413/422 problem naming everything wrong."""
    try:
        records = (
            record.decode_ndjson(body) if media_type == NDJSON else record.decode_request(body)
        )
    except record.MalformedBody as exc:
        raise problems.malformed(str(exc)) from None
    except record.RecordsInvalid as exc:
        raise problems.invalid(exc.errors) from None
    if not records:
        raise problems.invalid([FieldError(None, "", "the batch is empty")])
    if len(records) > max_records:
        raise problems.batch_too_large(len(records), max_records)
    return records


def is_history(request: web.Request) -> bool:
    """Whether the records are history sent on purpose (``Dronetrack-Backfill: 1``)."""
    value = request.headers.get(BACKFILL)
    if value is None:
        return False
    if value != "1":
        raise problems.bad_header(f"{BACKFILL} must be 1 (history) or absent")
    return True


def check_event_times(
    records: list[TelemetryIn],
    *,
    single: bool,
    now_ms: int,
    max_future_ms: int,
    max_age_ms: int,
    reject_old: bool,
    history: bool = False,
) -> list[bool]:
    """Refuse records from too far in the future (a wrong clock), and very old ones when so
    configured; returns which records are late (older than the maximum age) otherwise. History
    (an imported flight log) is old on purpose: neither refused nor late for its age."""
    newest, oldest = now_ms + max_future_ms, now_ms - max_age_ms
    errors: list[FieldError] = []
    late = [False] * len(records)
    for i, r in enumerate(records):
        ts = r.ts
        assert isinstance(ts, int)  # __post_init__ normalised RFC 3339 to epoch ms
        if ts > newest:
            errors.append(
                FieldError(
                    None if single else i,
                    "ts",
                    f"more than {max_future_ms} ms ahead of the server's clock "
                    f"({record.iso(now_ms)})",
                )
            )
        elif ts < oldest:
            # Epoch seconds of today read as milliseconds are January 1970: a unit mistake,
            # refused whatever the setting, or the drone would never show.
            hint = record.unit_hint(ts)
            if hint is not None:
                errors.append(
                    FieldError(None if single else i, "ts", f"{ts} is {record.iso(ts)}; {hint}")
                )
            elif history:
                continue
            elif reject_old:
                errors.append(
                    FieldError(None if single else i, "ts", f"older than {max_age_ms} ms")
                )
            late[i] = True
    if errors:
        raise problems.invalid(errors, reason="event_time")
    return late
