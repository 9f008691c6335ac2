"""``python -m streams``: run one stream worker with settings from the environment."""

from __future__ import annotations

import faust

from dronetrack import logs
from dronetrack.settings import Settings
from dronetrack.store import open_store
from streams.app import create_app
from streams.sink import StoreSink


def main() -> None:
    settings = Settings.from_env()
    logs.configure("streams", settings.log_level)
    sink = StoreSink(open_store(settings))
    app = create_app(settings, sink)
    worker = faust.Worker(
        app,
        sink,
        loglevel=settings.log_level,
        override_logging=False,
        quiet=True,
    )
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
