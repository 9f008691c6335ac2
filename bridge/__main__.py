"""``python -m bridge``: the MAVLink bridge with settings from the environment."""

from __future__ import annotations

from bridge.app import create_app
from dronetrack import logs
from dronetrack.settings import Settings
from dronetrack.web import serve


def main(settings: Settings | None = None) -> None:
    settings = settings or Settings.from_env()
    logs.configure("bridge", settings.log_level)
    serve(create_app(settings), settings.bridge_metrics_host, settings.bridge_metrics_port)


if __name__ == "__main__":
    main()
