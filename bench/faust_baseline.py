"""A bare Faust worker for the stream bench: the worker's Faust settings, transport and batching,
with an agent that only counts the telemetry records. It shows what the hot path would cost
through a Faust agent (the worker reads that topic with aiokafka instead: streams/feed.py)."""

from __future__ import annotations

import os
from typing import Any, cast

import faust

from dronetrack import topics
from dronetrack.settings import Settings
from streams import transport
from streams.app import faust_config


def main() -> None:
    settings = Settings.from_env()
    app = faust.App(settings.streams_worker_id, **faust_config(settings))
    transport.install(app, settings.kafka_fetch_max_wait_ms)
    telemetry = app.topic(
        topics.TELEMETRY,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.kafka_topic_partitions,
    )
    done_file = os.environ["BENCH_DONE_FILE"]
    seen = 0

    @app.agent(telemetry)
    async def count(stream: faust.StreamT[bytes]) -> None:
        nonlocal seen
        window = settings.streams_batch_window_ms / 1000
        async for batch in cast(Any, stream).take_events(settings.streams_batch_max, window):
            seen += len(batch)
            with open(done_file, "w") as f:  # noqa: ASYNC230 - a few bytes, once per batch
                f.write(str(seen))

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
