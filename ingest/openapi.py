"""The OpenAPI 3.1 document served at ``/openapi.json``, built from the same record types and
settings the handler uses, so the document cannot drift from the behaviour."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from dronetrack.record import TelemetryIn
from dronetrack.settings import Settings
from ingest.body import ENCODINGS, JSON, NDJSON

PROBLEM = "application/problem+json"
_REF = "#/components/schemas/{name}"
# The years an RFC 3339 ``ts`` may have: any zone keeps 1971-9998 within the epoch-ms range that
# the record takes (1970 and 9999 are only partly in it; a pattern cannot say which part).
YEARS = r"^(?:197[1-9]|19[89][0-9]|[2-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"


def _with_years(components: dict[str, Any]) -> dict[str, Any]:
    """The record's schema with the range of an RFC 3339 ``ts`` stated, as a pattern on its
    year: ``format: date-time`` alone admits years the record refuses (0001-1969)."""
    for choice in components["TelemetryIn"]["properties"]["ts"]["anyOf"]:
        if choice.get("format") == "date-time":
            choice["pattern"] = YEARS
    return components


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "422 only: every bad field of every bad record",
                "items": {
                    "type": "object",
                    "required": ["index", "field", "reason"],
                    "properties": {
                        "index": {
                            "type": ["integer", "null"],
                            "description": "position in the batch; null for a lone object",
                        },
                        "field": {"type": "string", "description": "empty: the record itself"},
                        "reason": {"type": "string"},
                    },
                },
            },
        },
    }


def _error(description: str, *headers: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM: {"schema": {"$ref": _REF.format(name="Problem")}}},
    }
    if headers:
        response["headers"] = {
            name: {"schema": {"type": "string"}, "required": True} for name in headers
        }
    return response


@functools.lru_cache(maxsize=4)
def document(settings: Settings) -> dict[str, Any]:
    (record,), components = msgspec.json.schema_components([TelemetryIn], ref_template=_REF)
    components = _with_years(components)
    components["Problem"] = _problem_schema()
    batch = {
        "type": "array",
        "items": record,
        "minItems": 1,
        "maxItems": settings.ingest_max_batch_records,
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "dronetrack ingest",
            "version": "1",
            "description": "Drone telemetry in; see docs/ingest.md.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"fleetToken": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/v1/telemetry": {
                "post": {
                    "operationId": "postTelemetry",
                    "summary": "Publish telemetry records (all or nothing)",
                    # Not a header parameter: a coding describes the bytes of the body, which a
                    # parameter's value cannot change.
                    "description": "The body may be compressed: send it with "
                    f"`Content-Encoding: {' or '.join(ENCODINGS)}` (any other coding gets 415). "
                    "The body limit applies to the body as sent and to what it inflates to.",
                    "security": [{"fleetToken": []}],
                    "parameters": [
                        {
                            "name": "Dronetrack-Backfill",
                            "in": "header",
                            "required": False,
                            "description": "1: the records are history sent on purpose (an "
                            "imported flight log): taken however old, never late, kept out of "
                            "live state and alerts (docs/integrations.md)",
                            "schema": {"type": "string", "enum": ["1"]},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            JSON: {"schema": {"oneOf": [record, batch]}},
                            NDJSON: {
                                "schema": {"type": "string"},
                                "description": "one record object per line",
                            },
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "every record was acknowledged by Kafka",
                            "content": {
                                JSON: {
                                    "schema": {
                                        "type": "object",
                                        "required": ["accepted", "late"],
                                        "properties": {
                                            "accepted": {"type": "integer", "minimum": 1},
                                            "late": {"type": "integer", "minimum": 0},
                                        },
                                    }
                                }
                            },
                        },
                        "400": _error(
                            "the body is not JSON, or not the gzip or deflate it says, or "
                            "Dronetrack-Backfill is not 1"
                        ),
                        "401": _error("missing or invalid token", "WWW-Authenticate"),
                        "408": _error("the body did not arrive in time"),
                        "413": _error(
                            f"body over {settings.ingest_max_body_bytes} bytes or over "
                            f"{settings.ingest_max_batch_records} records"
                        ),
                        "415": _error("unsupported Content-Type or Content-Encoding"),
                        "422": _error("records break the schema or the event-time limits"),
                        "429": _error("the fleet is over its rate limit", "Retry-After"),
                        "503": _error("Kafka did not acknowledge in time", "Retry-After"),
                    },
                }
            },
            "/healthz": _ops("the process is alive"),
            "/readyz": _ops("the broker answers (503 names what fails)", "503"),
            "/metrics": _ops("Prometheus metrics, text format"),
            "/openapi.json": _ops("this document"),
        },
    }


def _ops(description: str, *extra: str) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": description}}
    for status in extra:
        responses[status] = {"description": "not ready"}
    return {"get": {"responses": responses}}
