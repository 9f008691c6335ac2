"""``dronetrack run``: the whole embedded system comes up, shows simulated drones moving, and
stops on SIGTERM without leaving a process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from dronetrack import tokens
from dronetrack.broker import free_port
from tests.integration.conftest import eventually


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc, Linux)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_run_shows_moving_drones_and_stops_cleanly(tmp_path: Path) -> None:
    dashboard_port = free_port()
    env = {
        **os.environ,
        "DRONETRACK_EMBEDDED_BROKER_PORT": "0",
        "DRONETRACK_INGEST_PORT": str(free_port()),
        "DRONETRACK_DASHBOARD_PORT": str(dashboard_port),
        "DRONETRACK_STREAMS_WEB_PORT": str(free_port()),
        "DRONETRACK_SQLITE_PATH": str(tmp_path / "store.sqlite3"),
        "DRONETRACK_STREAMS_DATA_DIR": str(tmp_path / "streams"),
        "DRONETRACK_LOG_DIR": str(tmp_path / "log"),
        "DRONETRACK_INGEST_TOKENS_FILE": str(tmp_path / "ingest-tokens"),
        "DRONETRACK_DASHBOARD_TILE_URL": "",
        "DRONETRACK_SIM_RATE_HZ": "4",
    }
    run = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block; waits are bounded
        [sys.executable, "-m", "dronetrack", "run", "--drones", "5"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{dashboard_port}"
    banner: list[str] = []
    try:
        # The banner names the demo user's fresh password.
        assert run.stdout is not None
        while not banner or "Press Ctrl-C" not in banner[-1]:
            line = await asyncio.to_thread(run.stdout.readline)
            assert line, "dronetrack run ended before printing its banner"
            banner.append(line.decode())
        password = next(ln for ln in banner if "sign in" in ln).split(" / ")[1].strip()
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:

            async def signed_in() -> bool:
                try:
                    creds = {"name": "demo", "password": password}
                    async with http.post(f"{url}/api/login", json=creds) as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(signed_in, timeout=60, what="the demo user to sign in")

            async def positions() -> dict[str, tuple[float, float]] | None:
                try:
                    async with http.get(f"{url}/api/drones") as response:
                        drones = (await response.json())["drones"]
                except aiohttp.ClientError:
                    return None
                return {d["drone_id"]: (d["lat"], d["lon"]) for d in drones} or None

            first = await eventually(positions, timeout=60, what="simulated drones on the API")

            async def moved() -> bool:
                now = await positions()
                return bool(now) and len(now) == 5 and now != first  # type: ignore[arg-type]

            await eventually(moved, timeout=30, what="all five drones and a change of position")
            async with http.get(url) as page:
                assert page.status == 200
                assert "leaflet.js" in await page.text()

        family = descendants(run.pid)
        assert len(family) >= 5, "broker, ingest, streams, dashboard and simulator"
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    text = "".join(banner) + output.decode()
    assert run.returncode == 0, text
    assert "dronetrack is running" in text
    assert f"sign in    demo / {password}" in text
    assert "dronetrack stopped." in text
    # The demo fleet's token is printed with the URLs (the moving drones show the simulator
    # used it) and revoked when the run stops.
    token = text.split("token      ", 1)[1].split()[0]
    assert token.startswith("dt_")
    assert tokens.load(tmp_path / "ingest-tokens") == {}
    assert not [pid for pid in family if alive(pid)], "a child process outlived `dronetrack run`"
