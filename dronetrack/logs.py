"""Structured logs: one JSON object per line on stderr, with whatever ``extra`` a call passes."""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure(service: str, level: str = "INFO", file: Path | None = None) -> None:
    """JSON lines on stderr; with ``file``, there instead, and only warnings on stderr (for a
    command whose console is for people, as ``dronetrack run``'s is)."""
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(JsonFormatter(service))
    handlers: list[logging.Handler] = [console]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        console.setLevel(logging.WARNING)
        to_file = logging.FileHandler(file)
        to_file.setFormatter(JsonFormatter(service))
        handlers.append(to_file)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level.upper())
    # The HTTP access log is noise at telemetry rates; metrics count requests instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
