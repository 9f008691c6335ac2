"""Kafka topic names: versioned, so a breaking change gets a new topic rather than a surprise.
What may change within a version is written down in docs/topics.md ("Versioning")."""

from __future__ import annotations

# Key: drone_id. Value: docs/schemas/telemetry-v1.topic.json; headers: telemetry-v1.headers.json.
TELEMETRY = "drone.telemetry.v1"
# Key: drone_id. Value: docs/schemas/alert-event-v1.json.
ALERTS = "drone.alerts.v1"
# Compacted: each drone's latest state. Key: FLEET/DRONE_ID (events.drone_key; drone_id alone
# until 2026-11, a change made within v1, see docs/topics.md). Value: latest-v1.json.
LATEST = "drone.latest.v1"
# Key and value: the original record's bytes. Headers: dead-letter-v1.headers.json.
DEAD_LETTER = "drone.telemetry.dlq.v1"

# Finished flights (key: FLEET/DRONE_ID). Value: docs/schemas/flight-v1.json.
FLIGHTS = "drone.flights.v1"
# Key: the delivery's idempotency key (FLEET/ALERT_ID/EVENT/CHANNEL_ID). Value: the alert event's
# original bytes (alert-event-v1.json). Headers: notification-dead-letter-v1.headers.json.
NOTIFY_DEAD_LETTER = "drone.notifications.dlq.v1"

# What the stream workers read or write (they start once these exist).
PIPELINE = (TELEMETRY, ALERTS, LATEST, DEAD_LETTER, FLIGHTS)
ALL = (*PIPELINE, NOTIFY_DEAD_LETTER)
COMPACTED = frozenset({LATEST})
# What each topic's key is (part of the contract: changing one needs a new topic version).
KEYS = {
    TELEMETRY: "drone_id",
    ALERTS: "drone_id",
    LATEST: "fleet/drone_id",
    DEAD_LETTER: "the original record's key",
    NOTIFY_DEAD_LETTER: "fleet/alert_id/event/channel_id",
    FLIGHTS: "fleet/drone_id",
}

# Headers. Ingest marks a record older than INGEST_MAX_AGE_MS (with INGEST_OLD_RECORDS=mark).
LATE_HEADER = "dronetrack-late"
# Ingest marks records sent as history (an imported flight log, docs/integrations.md).
BACKFILL_HEADER = "dronetrack-backfill"
# A dead letter carries the original record's headers plus these.
DLQ_REASON = "dlq.reason"
DLQ_TOPIC = "dlq.topic"
DLQ_PARTITION = "dlq.partition"
DLQ_OFFSET = "dlq.offset"
# A notifications dead letter carries the dlq.* headers (dlq.topic is drone.alerts.v1) plus these.
NOTIFY_CHANNEL = "notify.channel"
NOTIFY_ATTEMPTS = "notify.attempts"
