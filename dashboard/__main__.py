"""``python -m dashboard``: run the dashboard with settings from the environment."""

from __future__ import annotations

from dashboard.app import create_app
from dronetrack import logs
from dronetrack.settings import Settings
from dronetrack.web import serve


def main() -> None:
    settings = Settings.from_env()
    logs.configure("dashboard", settings.log_level)
    serve(create_app(settings), settings.dashboard_host, settings.dashboard_port)


if __name__ == "__main__":
    main()
