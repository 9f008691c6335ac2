"""The image's HEALTHCHECK: finds the service that is PID 1 and asks its /healthz."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dronetrack.broker import free_port
from dronetrack.healthcheck import port_of, probe, service_of
from dronetrack.settings import Settings
from dronetrack.web import instrument


@pytest.mark.parametrize(
    ("argv", "service"),
    [
        (["/opt/venv/bin/python", "/opt/venv/bin/dronetrack", "ingest"], "ingest"),
        (["/opt/venv/bin/python3", "/opt/venv/bin/dronetrack", "streams"], "streams"),
        (["python", "-m", "dashboard"], "dashboard"),
        (["/opt/venv/bin/python", "/opt/venv/bin/dronetrack", "notifier"], "notifier"),
        (["/opt/venv/bin/python", "/opt/venv/bin/dronetrack", "simulate"], None),
        (["/opt/venv/bin/python", "/opt/venv/bin/dronetrack", "db", "migrate"], None),
    ],
)
def test_finds_the_service_from_the_command_line(argv: list[str], service: str | None) -> None:
    assert service_of(argv) == service


def test_ports_come_from_the_settings() -> None:
    s = Settings().replace(ingest_port=1, streams_web_port=2, dashboard_port=3, notify_port=4)
    names = ("ingest", "streams", "dashboard", "notifier")
    assert [port_of(n, s) for n in names] == [1, 2, 3, 4]


async def test_healthy_when_healthz_answers() -> None:
    app = web.Application()
    instrument(app)
    port = free_port()
    async with TestServer(app, host="127.0.0.1", port=port):
        assert await asyncio.to_thread(probe, port)


async def test_unhealthy_when_nothing_listens() -> None:
    assert not await asyncio.to_thread(probe, free_port())
