"""The stream worker's factory: the telemetry feed, and a Faust app around it.

- ``TelemetryFeed`` (streams.feed) reads ``drone.telemetry.v1`` in batches through a consumer group
  named ``DRONETRACK_STREAMS_WORKER_ID`` and hands each batch to ``process`` (pure) and the sink:
  latest state, track points, alerts, partials, dead letters, new drone states.
- The Faust agent ``fleet-minute`` merges partials into per-(fleet, minute) aggregates (state
  restored from a compacted topic, see streams.state) and writes each merged minute to the store.
- A Faust timer raises ``link_lost`` for silent flying drones and publishes consumer lag.
State and scaling are described in docs/streams.md.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any, cast

import faust

from dronetrack import topics
from dronetrack.events import LatestState
from dronetrack.settings import Settings
from streams import transport, windows
from streams.alerts import Rules
from streams.feed import TelemetryFeed, Write
from streams.flights import FlightRules
from streams.process import Raw, check_links, process
from streams.sink import StoreSink, minute_states, stats_topic
from streams.state import TopicState
from streams.writebehind import WriteBehind

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
        "broker_commit_interval": 1.0,
        "topic_partitions": settings.kafka_topic_partitions,
        "topic_replication_factor": settings.kafka_replication_factor,
        "table_standby_replicas": 0,
        # Our ops server (streams.ops) serves the probes and metrics; Faust's stays off (and
        # loopback-only, should anything start it).
        "web_enabled": False,
        "web_bind": "127.0.0.1",
        "datadir": str(settings.streams_data_dir),
        "consumer_auto_offset_reset": "earliest",
        "producer_acks": -1,
        "stream_buffer_maxsize": max(4096, settings.streams_batch_max * 2),
    }


def faust_app_id(settings: Settings) -> str:
    """Faust's app id, and so its consumer group: the fleet-minute agent's, apart from the
    telemetry group (``streams_worker_id``), which speaks another assignment protocol."""
    return f"{settings.streams_worker_id}-fleet-minute"


def create_app(
    settings: Settings, sink: StoreSink, states: TopicState[LatestState]
) -> tuple[faust.App, TelemetryFeed]:
    """The Faust app and the telemetry feed; the worker starts the feed after the sink."""
    app = faust.App(faust_app_id(settings), **faust_config(settings))
    # Minute statistics can wait a quarter second; a busier poll of the few partials cost
    # ~10 % of the worker's CPU on the embedded broker, which holds every fetch this long.
    transport.install(app, max(settings.kafka_fetch_max_wait_ms, 250))
    rules = Rules.from_settings(settings)
    flight_rules = FlightRules.from_settings(settings)
    partitions = settings.kafka_topic_partitions
    window_s = settings.streams_batch_window_ms / 1000
    keep_ms = settings.streams_stats_keep_minutes * windows.MINUTE_MS
    # One batch (or timer pass) at a time touches drone state (behind.lock), the same for the
    # fleet-minute state (stats_lock). A batch's writes run behind the next batch's processing.
    behind = WriteBehind()
    stats_lock = asyncio.Lock()
    minutes = minute_states(settings)

    async def materialize(raws: list[Raw]) -> Write:
        sink.metrics.batch_size.observe(len(raws))
        await states.load({r.partition for r in raws})
        return functools.partial(sink.write, process(raws, states.get, rules, flight_rules))

    feed = TelemetryFeed(settings, behind, materialize, states.forget)

    partials = app.topic(
        stats_topic(settings),
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )

    @app.agent(partials, name="fleet-minute")
    async def fleet_minute(stream: faust.StreamT[bytes]) -> None:
        # take_events is missing from StreamT's stubs; it acks a batch when the body is done.
        taken = cast(Any, stream).take_events(settings.streams_batch_max, within=window_s)
        async for batch in taken:
            async with stats_lock:
                await minutes.load({e.message.partition for e in batch})
                changed = windows.fold(
                    minutes.get,
                    [(e.message.partition, e.message.key, e.message.value) for e in batch],
                    keep_ms,
                )
                await _finish(sink.write_minutes(changed))

    partials_name = stats_topic(settings)

    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked: set[Any] = args[0] if args else kwargs.get("revoked", set())
        async with stats_lock:
            minutes.forget({tp.partition for tp in revoked if tp.topic == partials_name})

    app.on_partitions_revoked.connect(on_revoked)

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]  # faust's timer is untyped
    async def watch() -> None:
        """link_lost for silent drones (restoring idle partitions first), and consumer lag."""
        _publish_faust_lag(app, sink)
        behind_by = await feed.lag()
        for partition, n in behind_by.items():
            sink.metrics.lag.labels(topics.TELEMETRY, str(partition)).set(n)
        mine = set(behind_by)
        # A partition far behind (catching up after downtime) shows old records as if their
        # drones were silent now; its gaps are judged from the records instead (alerts.apply).
        live = {p for p, n in behind_by.items() if n <= settings.streams_batch_max}
        async with behind.lock:
            await states.load(mine)
            loaded = {p: states.get(p) for p in live}
            out = check_links(loaded, time.time_ns() // 1_000_000, rules, flight_rules)
            if out.alerts or out.flights:
                await behind.submit(sink.write(out))

    return app, feed


async def _finish(write: Any) -> None:
    """Let a started write finish even if the agent is cancelled (shutdown): Faust acks a
    taken batch when the agent leaves it, so leaving it half-written could lose it."""
    task = asyncio.ensure_future(write)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


def _publish_faust_lag(app: faust.App, sink: StoreSink) -> None:
    """The lag of Faust's partitions (the partials topic): highwater minus the committed offset."""
    consumer = app.consumer
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        committed = cast(Any, consumer)._committed_offset.get(tp)
        sink.metrics.lag.labels(tp.topic, str(tp.partition)).set(
            max(0, highwater - (committed or 0))
        )
