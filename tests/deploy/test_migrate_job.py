"""The db-migrate Job outlasts a first Cassandra start: it waits for the store (init container
`wait-for-cassandra`, run here for real against a local socket) with a deadline longer than the
30 minutes the operations guide allows Cassandra, and the Job's own deadline covers both."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from typing import Any

import pytest

from tests.deploy.manifests import DOCS, OVERLAYS, named, pod_spec, render

# What docs/operations.md gives a first Cassandra: `wait cassandradatacenter/dc1 ... --timeout=30m`.
CASSANDRA_FIRST_START_S = 30 * 60


def _wait_container(overlay: str) -> dict[str, Any]:
    spec = pod_spec(named(render(overlay), "Job", "db-migrate"))
    waits = [c for c in spec.get("initContainers", []) if c["name"] == "wait-for-cassandra"]
    assert waits, "db-migrate has no init container waiting for Cassandra"
    return dict(waits[0])


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def test_the_guide_still_allows_cassandra_30_minutes() -> None:
    assert "cassandradatacenter/dc1 --for=condition=Ready --timeout=30m" in DOCS.read_text()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_job_outlasts_a_first_cassandra_start(overlay: str) -> None:
    job = named(render(overlay), "Job", "db-migrate")
    wait_s = int(_env(_wait_container(overlay))["WAIT_S"])
    assert wait_s > CASSANDRA_FIRST_START_S, "the wait gives up before Cassandra may be ready"
    # The Job's deadline leaves the migration time after the longest wait.
    assert job["spec"]["activeDeadlineSeconds"] >= wait_s + 10 * 60


def _run_wait(port: int, wait_s: str) -> subprocess.Popen[str]:
    container = _wait_container("prod")
    assert container["command"][:2] == ["python", "-c"]
    env = {
        **os.environ,
        **_env(container),
        "WAIT_S": wait_s,
        "DRONETRACK_CASSANDRA_CONTACT_POINTS": "127.0.0.1",
        "DRONETRACK_CASSANDRA_PORT": str(port),
    }
    return subprocess.Popen(
        [sys.executable, "-c", container["command"][2]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_wait_ends_when_cassandra_accepts_connections() -> None:
    port = _free_port()
    wait = _run_wait(port, "600")
    try:
        assert wait.stderr is not None
        first = wait.stderr.readline()  # said once the first attempt failed: nothing listens yet
        assert re.search(rf"waiting for Cassandra at 127\.0\.0\.1:{port}", first), first
        with socket.create_server(("127.0.0.1", port)):
            out, _ = wait.communicate(timeout=60)
        assert wait.returncode == 0
        assert f"Cassandra accepts connections at 127.0.0.1:{port}" in out
    finally:
        wait.kill()
        wait.wait()


def test_the_wait_fails_clearly_at_its_deadline() -> None:
    wait = _run_wait(_free_port(), "0")
    _, err = wait.communicate(timeout=60)
    assert wait.returncode == 1
    assert "gave up waiting for Cassandra" in err
