"""The Faust app factory: agents that turn ``drone.telemetry.v1`` into materialized tables."""

from __future__ import annotations

import logging
from typing import Any

import faust
import msgspec

from dronetrack import record, topics
from dronetrack.settings import Settings
from streams.sink import StoreSink

log = logging.getLogger(__name__)


def faust_config(settings: Settings) -> dict[str, Any]:
    """Faust settings tuned for fast start-up and low latency; see docs/streams.md."""
    session_s = settings.streams_session_timeout_ms / 1000
    return {
        "broker": [f"kafka://{host}" for host in settings.require_kafka().split(",")],
        "broker_session_timeout": session_s,
        "broker_heartbeat_interval": max(session_s / 10, 0.1),
        "broker_request_timeout": max(session_s * 3, settings.kafka_request_timeout_ms / 1000),
        "broker_rebalance_timeout": session_s,
        "topic_partitions": settings.kafka_topic_partitions,
        "topic_replication_factor": settings.kafka_replication_factor,
        "table_standby_replicas": 0,
        "web_enabled": False,
        "web_bind": settings.streams_web_host,
        "web_port": settings.streams_web_port,
        "datadir": str(settings.streams_data_dir),
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
    }


def create_app(settings: Settings, sink: StoreSink) -> faust.App:
    app = faust.App(settings.streams_worker_id, **faust_config(settings))
    telemetry = app.topic(
        topics.TELEMETRY,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.kafka_topic_partitions,
    )
    window_s = settings.streams_batch_window_ms / 1000

    @app.agent(telemetry, name="materialize")
    async def materialize(stream: faust.StreamT[bytes]) -> None:
        """Latest state and track points, written to the store a batch at a time."""
        async for values in stream.take(settings.streams_batch_max, within=window_s):
            batch = []
            for value in values:
                try:
                    batch.append(record.decode_topic(value))
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    log.error("undecodable record skipped", extra={"error": str(exc)})
            await sink.write(batch)

    return app
