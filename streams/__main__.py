"""``python -m streams``: run one stream worker with settings from the environment."""

from __future__ import annotations

import gc
import sys

import faust
import mode.loop

from dronetrack import logs
from dronetrack.settings import Settings
from dronetrack.store import open_store
from dronetrack.web import REGISTRY
from streams import ops
from streams.app import create_app
from streams.metrics import StreamMetrics
from streams.sink import StoreSink
from streams.state import drone_states

# The write path allocates a few short-lived objects per event (records, statements, driver
# futures) that reference counting frees; at the default young-generation threshold (700) the
# collector still ran ~4,500 times in 20 s and took about a quarter of the worker's CPU on
# Cassandra. Collecting after every 20,000 net allocations instead scans mostly live objects.
YOUNG_GC_THRESHOLD = 20_000


class Worker(faust.Worker):
    async def on_startup_finished(self) -> None:
        """Once started (modules, the app, the store's driver and its metadata), move every
        object so far out of the collector's sight: full collections then scan only what the
        worker allocates while it runs."""
        await super().on_startup_finished()
        gc.collect()
        gc.freeze()


def main() -> None:
    # uvloop, as the HTTP services use: the worker's event loop is on its hot path.
    mode.loop.use("uvloop")
    # The store adapter's thread takes the GIL back after every row it writes; the default 5 ms
    # switch interval makes it queue behind the event loop's threads for each one.
    sys.setswitchinterval(0.0005)
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])
    settings = Settings.from_env()
    logs.configure("streams", settings.log_level)
    web = ops.create_app()
    server = ops.OpsServer(web, settings.streams_web_host, settings.streams_web_port)
    sink = StoreSink(settings, open_store(settings), StreamMetrics(web[REGISTRY]))
    app, feed = create_app(settings, sink, drone_states(settings))

    async def kafka_ready() -> object:
        assert sink.producer is not None, "not started"
        return await sink.producer.client.fetch_all_metadata()  # names no topic: creates none

    server.add_check("store", sink.store.ping)
    server.add_check("kafka", kafka_ready)
    server.add_check("topics", feed.topics_ready)
    server.add_check("sink", sink.stalled)
    worker = Worker(
        app,
        server,
        sink,
        feed,  # started after the sink it writes to, stopped before it
        loglevel=settings.log_level,
        override_logging=False,
        quiet=True,
    )
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
