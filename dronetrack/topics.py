"""Kafka topic names: versioned, so a breaking change gets a new topic rather than a surprise."""

from __future__ import annotations

TELEMETRY = "drone.telemetry.v1"
ALERTS = "drone.alerts.v1"
# Compacted: each drone's latest state (key = drone_id); see docs/topics.md.
LATEST = "drone.latest.v1"
DEAD_LETTER = "drone.telemetry.dlq.v1"

ALL = (TELEMETRY, ALERTS, LATEST, DEAD_LETTER)
COMPACTED = frozenset({LATEST})
