"""The published JSON Schemas (docs/schemas), generated from the msgspec types the code encodes
and decodes with, so the documents cannot drift from what is on the wire.

Every document names its dialect (``$schema``, JSON Schema 2020-12) and its identity (``$id``):
the schemas use 2020-12 keywords (``prefixItems`` for the ``[ts, pct]`` pairs), and a tool that
assumes an older draft without being told otherwise rejects valid messages.
"""

from __future__ import annotations

from typing import Any

from dronetrack import topics

DIALECT = "https://json-schema.org/draft/2020-12/schema"
# The documents have no web address of their own; a URN is a stable, absolute identity.
ID_PREFIX = "urn:dronetrack:schema:"


_DECIMAL = {"type": "string", "pattern": "^(0|[1-9][0-9]*)$"}
_LATE = {
    "const": "1",
    "description": "present when ingest accepted the record although it is older than allowed",
}

_BACKFILL = {
    "const": "1",
    "description": (
        "present when the record was sent as history (an imported flight log): stored as a "
        "track point, never the drone's live state, never an alert"
    ),
}


def _where_from(topic: str) -> dict[str, dict[str, Any]]:
    """The headers every dead letter carries (all required): why, and where it was read."""
    return {
        topics.DLQ_REASON: {"type": "string", "minLength": 1},
        topics.DLQ_TOPIC: {"const": topic},
        topics.DLQ_PARTITION: _DECIMAL,
        topics.DLQ_OFFSET: _DECIMAL,
    }


def _headers() -> dict[str, dict[str, Any]]:
    """The Kafka headers of each topic that has any, as a JSON object of header name to value
    (UTF-8 text). Written out here: there is no type they are decoded into."""
    return {
        "telemetry-v1.headers.json": {
            "title": f"{topics.TELEMETRY} headers",
            "description": "A record without headers is the usual case.",
            "type": "object",
            "properties": {topics.LATE_HEADER: _LATE, topics.BACKFILL_HEADER: _BACKFILL},
            "additionalProperties": False,
        },
        "dead-letter-v1.headers.json": {
            "title": f"{topics.DEAD_LETTER} headers",
            "description": (
                "Where the record was and why it could not be processed, plus the original "
                "record's headers, unchanged."
            ),
            "type": "object",
            "properties": {
                **_where_from(topics.TELEMETRY),
                topics.LATE_HEADER: _LATE,
                topics.BACKFILL_HEADER: _BACKFILL,
            },
            "required": list(_where_from(topics.TELEMETRY)),
            "additionalProperties": {"type": "string"},
        },
        "notification-dead-letter-v1.headers.json": {
            "title": f"{topics.NOTIFY_DEAD_LETTER} headers",
            "description": (
                "Which channel an alert event could not be delivered to, after how many "
                "attempts and why, and where the event was read."
            ),
            "type": "object",
            "properties": {
                **_where_from(topics.ALERTS),
                topics.NOTIFY_CHANNEL: {
                    "type": "string",
                    "pattern": "^[^/]+/.+$",
                    "description": "FLEET/CHANNEL_ID",
                },
                topics.NOTIFY_ATTEMPTS: _DECIMAL,
            },
            "required": [
                *_where_from(topics.ALERTS),
                topics.NOTIFY_CHANNEL,
                topics.NOTIFY_ATTEMPTS,
            ],
            "additionalProperties": False,
        },
    }


def documents() -> dict[str, dict[str, Any]]:
    """Every published document by file name, as ``dronetrack schema`` writes it."""
    from dronetrack import events, record

    generated = {
        **record.json_schemas(),
        **events.json_schemas(),
        **_headers(),
    }
    return {
        name: {"$schema": DIALECT, "$id": ID_PREFIX + name.removesuffix(".json"), **schema}
        for name, schema in generated.items()
    }
