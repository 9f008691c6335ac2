"""The dashboard as a running process, held to its OpenAPI document by Schemathesis: every
operation (login, logout and the live event stream included), signed in, with all checks on.
Like tests/integration/test_ingest_contract.py, its strategies are driven from Hypothesis
directly (the pytest plugin does not run on this pytest)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from dashboard.auth import COOKIE
from dashboard.openapi import document
from dronetrack import processes
from dronetrack.broker import free_port
from dronetrack.settings import Settings
from dronetrack.store.sqlite import SqliteStore
from tests.dashboard_env import PASSWORD, dashboard_settings, now_ms, seed
from tests.integration.helpers import wait_ready

# A session this short ends an event stream within seconds (it is re-checked every 2 s), so
# the stream's operation can be called like any other.
STREAM_SESSION_S = 2


async def _seed(path: Path) -> None:
    store = SqliteStore(path)
    await store.open()
    try:
        await seed(store, now_ms())
    finally:
        await store.close()


def _start(settings: Settings, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    env = {**settings.replace(dashboard_port=port).to_env(), "PATH": "/usr/bin:/bin"}
    with log.open("ab") as out:
        proc = processes.spawn([sys.executable, "-m", "dashboard"], env=env, output=out)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return url, proc


@pytest.fixture(scope="module")
def dashboards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """Two dashboard processes over one seeded store, without the login limits a schema cannot
    express: one with the usual sessions, one whose sessions last STREAM_SESSION_S."""
    tmp = tmp_path_factory.mktemp("dashboard-contract")
    base = dashboard_settings(
        tmp, dashboard_login_failures_per_name=0, dashboard_login_failures_per_address=0
    )
    asyncio.run(_seed(base.sqlite_path))
    started = [
        _start(base, tmp / "dashboard.log"),
        _start(base.replace(dashboard_session_max_age_s=STREAM_SESSION_S), tmp / "stream.log"),
    ]
    try:
        yield started[0][0], started[1][0]
    finally:
        for _, proc in started:
            processes.stop(proc, 30.0)


def sign_in(url: str, name: str) -> tuple[requests.Session, str]:
    http = requests.Session()
    response = http.post(f"{url}/api/login", json={"name": name, "password": PASSWORD}, timeout=30)
    assert response.status_code == 200, response.text
    return http, response.json()["csrf_token"]


# Rules across parameters that a schema cannot state: since before until, a replay window of
# at most 6 h. Valid cases of these operations keep to them (a window ending now).
WINDOWED = {
    "GET /api/alerts",
    "GET /api/stats",
    "GET /api/replay",
    "GET /api/replay/columns",
    "GET /api/drones/{drone_id}/track.{format}",
}
HOUR_MS = 3_600_000

MAX_EXAMPLES = {"POST /api/logout": 15, "GET /api/events": 6, "POST /api/login": 40}


def exercise(operation: Any, url: str, stream_url: str, shared: tuple[Any, str]) -> None:
    label = operation.label

    @settings(
        max_examples=MAX_EXAMPLES.get(label, 50),
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        # Sign-out and the stream end their session: each case gets its own.
        if label == "GET /api/events":
            base, (http, token) = stream_url, sign_in(stream_url, "carol")
        elif label == "POST /api/logout":
            base, (http, token) = url, sign_in(url, "carol")
        else:
            base, (http, token) = url, shared
        positive = case.meta.generation.mode.is_positive
        # Signed in: the document's security scheme is the session cookie, for which
        # Schemathesis makes up values (its ignored_auth check still tries without it).
        case.cookies = {**(case.cookies or {}), COOKIE: http.cookies[COOKIE]}
        query = case.query if case.query is not None else {}
        if positive and label in WINDOWED and {"since", "until"} & set(query):
            end = now_ms()
            case.query = {**query, "since": end - HOUR_MS, "until": end}
        # Valid requests carry the session's real CSRF token; invalid ones keep theirs.
        if positive and "X-CSRF-Token" in (case.headers or {}):
            case.headers["X-CSRF-Token"] = token
        case.call_and_validate(base_url=base, session=http, timeout=30)

    check()


OPERATIONS = [
    f"{method.upper()} {path}" for path, item in document()["paths"].items() for method in item
]


@pytest.fixture(scope="module")
def served(dashboards: tuple[str, str]) -> tuple[Any, tuple[requests.Session, str]]:
    """The document as the dashboard serves it, and a session to call it with."""
    url, _ = dashboards
    return schemathesis.openapi.from_url(f"{url}/api/openapi.json"), sign_in(url, "alice")


@pytest.mark.parametrize("label", OPERATIONS)
def test_responses_match_the_openapi_document(
    dashboards: tuple[str, str], served: tuple[Any, tuple[requests.Session, str]], label: str
) -> None:
    url, stream_url = dashboards
    schema, shared = served
    (operation,) = [
        result.ok() for result in schema.get_all_operations() if result.ok().label == label
    ]
    exercise(operation, url, stream_url, shared)


def test_every_operation_is_exercised() -> None:
    assert len(OPERATIONS) == 14
    assert {"POST /api/login", "POST /api/logout", "GET /api/events"} <= set(OPERATIONS)
