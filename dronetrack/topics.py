"""Kafka topic names: versioned, so a breaking change gets a new topic rather than a surprise."""

from __future__ import annotations

TELEMETRY = "drone.telemetry.v1"
ALERTS = "drone.alerts.v1"
DEAD_LETTER = "drone.telemetry.dlq.v1"

ALL = (TELEMETRY, ALERTS, DEAD_LETTER)
