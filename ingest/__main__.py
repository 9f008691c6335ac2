"""``python -m ingest``: run the ingest service with settings from the environment."""

from __future__ import annotations

from dronetrack import logs
from dronetrack.settings import Settings
from dronetrack.web import serve
from ingest.app import create_app


def main() -> None:
    settings = Settings.from_env()
    logs.configure("ingest", settings.log_level)
    settings.require_kafka()
    serve(create_app(settings), settings.ingest_host, settings.ingest_port, settings.ingest_drain_s)


if __name__ == "__main__":
    main()
