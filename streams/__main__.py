"""``python -m streams``: run one stream worker with settings from the environment."""

from __future__ import annotations

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


def main() -> None:
    # uvloop, as the HTTP services use: the worker's event loop is on its hot path.
    mode.loop.use("uvloop")
    # The store adapter's thread takes the GIL back after every row it writes; the default 5 ms
    # switch interval makes it queue behind the event loop's threads for each one.
    sys.setswitchinterval(0.0005)
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
    worker = faust.Worker(
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
