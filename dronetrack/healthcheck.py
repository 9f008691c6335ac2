"""``python -m dronetrack.healthcheck``: the container image's HEALTHCHECK.

One image runs every service, so the check finds out which one is PID 1 (its command line) and
asks that service's ``/healthz`` on loopback, on the port its settings give. Commands without an
HTTP endpoint (the simulator, one-shot admin commands) count as healthy while they run.
"""

from __future__ import annotations

import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from dronetrack.settings import Settings

TIMEOUT_S = 2.0


def service_of(argv: Sequence[str]) -> str | None:
    """The service a ``dronetrack`` command line runs, or None for commands without HTTP."""
    for arg in argv[1:]:
        if arg in ("ingest", "streams", "dashboard", "notifier"):
            return arg
        if not arg.startswith("-") and not arg.endswith(("python", "python3", "dronetrack")):
            return None
    return None


def port_of(service: str, settings: Settings) -> int:
    return {
        "ingest": settings.ingest_port,
        "streams": settings.streams_web_port,
        "dashboard": settings.dashboard_port,
        "notifier": settings.notify_port,
    }[service]


def probe(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``/healthz`` answers 200 within the timeout."""
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def main() -> int:
    argv = Path("/proc/1/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    service = service_of([a.decode() for a in argv])
    if service is None:
        return 0
    return 0 if probe(port_of(service, Settings.from_env())) else 1


if __name__ == "__main__":
    sys.exit(main())
