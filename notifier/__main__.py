"""``python -m notifier``: deliver alert events to the fleets' channels."""

from __future__ import annotations

from dronetrack import logs
from dronetrack.settings import Settings
from dronetrack.web import serve
from notifier.app import create_app


def main() -> None:
    settings = Settings.from_env()
    logs.configure("notifier", settings.log_level)
    settings.require_kafka()
    serve(create_app(settings), settings.notify_host, settings.notify_port)


if __name__ == "__main__":
    main()
