"""The ingest API's errors: one exception type that renders as ``application/problem+json``.

Every refusal of ``POST /v1/telemetry`` is one of these, so the shapes documented in the
OpenAPI document and docs/ingest.md are produced in exactly one place.
"""

from __future__ import annotations

from collections.abc import Sequence

from dronetrack import web as web_problems
from dronetrack.record import FieldError


class Problem(web_problems.Problem):
    """A refusal of the ingest API; ``reason`` labels it in the rejected-records metric."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        reason: str,
        headers: dict[str, str] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(status, title, detail, headers, **extra)
        self.reason = reason


def unauthorized(detail: str, error: str | None = "invalid_token") -> Problem:
    # RFC 6750: no error code when the request carried no credentials at all.
    challenge = 'Bearer realm="dronetrack"'
    if error:
        challenge += f', error="{error}"'
    return Problem(401, "Unauthorized", detail, "unauthorized", {"WWW-Authenticate": challenge})


def unsupported_media_type(got: str, supported: Sequence[str]) -> Problem:
    return Problem(
        415,
        "Unsupported media type",
        f"Content-Type {got!r} is not supported; send one of: {', '.join(supported)}",
        "unsupported_media_type",
        {"Accept-Post": ", ".join(supported)},
    )


def unsupported_encoding(got: str, supported: Sequence[str]) -> Problem:
    # RFC 7694: a 415 for a content coding says which ones the server takes.
    return Problem(
        415,
        "Unsupported content coding",
        f"Content-Encoding {got!r} is not supported; send the body as is or with one of: "
        f"{', '.join(supported)}",
        "unsupported_encoding",
        {"Accept-Encoding": ", ".join(supported)},
    )


def undecodable(coding: str) -> Problem:
    return Problem(400, "Malformed body", f"the body is not valid {coding}", "malformed")


def body_too_large(limit: int) -> Problem:
    return Problem(413, "Body too large", f"the body exceeds {limit} bytes", "body_too_large")


def body_timeout(seconds: float) -> Problem:
    return Problem(
        408,
        "Body too slow",
        f"the body did not arrive within {seconds:g} s of the headers; nothing was accepted",
        "body_timeout",
        {"Connection": "close"},
    )


def batch_too_large(count: int, limit: int) -> Problem:
    return Problem(
        413,
        "Batch too large",
        f"{count} records; at most {limit} per request",
        "batch_too_large",
    )


def bad_header(detail: str) -> Problem:
    return Problem(400, "Bad request header", detail, "bad_header")


def malformed(detail: str) -> Problem:
    return Problem(400, "Malformed JSON", detail, "malformed")


def invalid(errors: Sequence[FieldError], reason: str = "invalid") -> Problem:
    """422 naming every bad record (``index``: position in the batch, null for a lone object)
    and every bad field with its reason. Nothing of the batch is published."""
    records = len({e.index for e in errors})
    return Problem(
        422,
        "Invalid telemetry",
        f"{len(errors)} problem(s) in {records} record(s); nothing was accepted",
        reason,
        errors=[{"index": e.index, "field": e.field, "reason": e.reason} for e in errors],
    )


def rate_limited(fleet: str, retry_after_s: int) -> Problem:
    return Problem(
        429,
        "Too many records",
        f"fleet {fleet!r} is over its rate limit; nothing was accepted",
        "rate_limited",
        {"Retry-After": str(retry_after_s)},
    )


def unavailable(retry_after_s: int) -> Problem:
    return Problem(
        503,
        "Broker unavailable",
        "the records were not acknowledged by Kafka in time; retry the same request later",
        "unavailable",
        {"Retry-After": str(retry_after_s)},
    )
