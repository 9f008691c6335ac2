"""``dronetrack run``: the whole embedded system comes up, shows simulated drones moving, and
stops on SIGTERM without leaving a process behind; a killed service is restarted, a Ctrl-C loses
no accepted record, and a taken port is named."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import aiohttp

from dronetrack import tokens
from dronetrack.broker import free_port
from dronetrack.settings import Settings
from dronetrack.store import open_store
from tests.integration.conftest import eventually
from tests.integration.helpers import good


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
        "DRONETRACK_RUN_WEB_PORT": str(free_port()),
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


def run_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "DRONETRACK_EMBEDDED_BROKER_PORT": "0",
        "DRONETRACK_INGEST_PORT": str(free_port()),
        "DRONETRACK_DASHBOARD_PORT": str(free_port()),
        "DRONETRACK_STREAMS_WEB_PORT": str(free_port()),
        "DRONETRACK_RUN_WEB_PORT": str(free_port()),
        "DRONETRACK_SQLITE_PATH": str(tmp_path / "store.sqlite3"),
        "DRONETRACK_STREAMS_DATA_DIR": str(tmp_path / "streams"),
        "DRONETRACK_LOG_DIR": str(tmp_path / "log"),
        "DRONETRACK_INGEST_TOKENS_FILE": str(tmp_path / "ingest-tokens"),
        "DRONETRACK_DASHBOARD_TILE_URL": "",
    }


class Console:
    """``dronetrack run`` without a simulator, its console read line by line as it comes.
    ``own_group``: in a process group of its own, as a shell runs a command in a terminal."""

    def __init__(self, env: dict[str, str], own_group: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dronetrack", "run", "--no-simulator"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=own_group,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.decode())

    async def line(self, text: str, timeout: float = 90.0) -> str:
        async def seen() -> str | None:
            found = [ln for ln in self.lines if text in ln]
            if not found and self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"run ended without {text!r}:\n{self.text}")
            return found[0] if found else None

        return await eventually(seen, timeout=timeout, what=repr(text))

    async def field(self, name: str) -> str:
        """A value from the banner, e.g. ``token``."""
        return (await self.line(f"  {name} ")).split()[1]

    @property
    def text(self) -> str:
        return "".join(self.lines)

    def finish(self, timeout: float = 90.0) -> int:
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.finish()


async def post(http: aiohttp.ClientSession, url: str, token: str, records: list[Any]) -> int:
    """Records accepted (202) by ingest; 0 when refused or unreachable."""
    try:
        async with http.post(
            f"{url}/v1/telemetry", json=records, headers={"Authorization": f"Bearer {token}"}
        ) as r:
            return len(records) if r.status == 202 else 0
    except aiohttp.ClientError:
        return 0


async def stored(tmp_path: Path, drone_ids: list[str]) -> int:
    store = open_store(Settings(sqlite_path=tmp_path / "store.sqlite3"))
    await store.open()
    try:
        tracks = [await store.track("demo", d, limit=100_000) for d in drone_ids]
    finally:
        await store.close()
    return sum(len(t) for t in tracks)


def service_pid(run_pid: int, module: str) -> int:
    for pid in descendants(run_pid):
        with contextlib.suppress(OSError):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if argv[1:3] == [b"-m", module.encode()]:
                return pid
    raise AssertionError(f"no {module} process below {run_pid}")


def broker_pid(run_pid: int) -> int:
    for pid in descendants(run_pid):
        with contextlib.suppress(OSError):
            if b"tansu" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    raise AssertionError(f"no broker below {run_pid}")


async def test_a_killed_worker_is_restarted_and_nothing_is_lost(tmp_path: Path) -> None:
    console = Console(run_env(tmp_path))
    try:
        token, ingest = await console.field("token"), await console.field("ingest")
        ingest = ingest.removesuffix("/v1/telemetry")
        metrics = await console.field("restarts")
        await console.line("Press Ctrl-C")
        async with aiohttp.ClientSession() as http:
            before = [good("before", i) for i in range(50)]
            assert await post(http, ingest, token, before) == 50
            os.kill(service_pid(console.proc.pid, "streams"), signal.SIGKILL)
            await console.line("streams exited with code -9")
            await console.line("restart 1 in ")
            after = [good("after", i) for i in range(50)]
            assert await post(http, ingest, token, after) == 50

            async def all_stored() -> bool:
                return await stored(tmp_path, ["before", "after"]) == 100

            await eventually(all_stored, timeout=90, what="the 100 records stored")
            async with http.get(metrics) as r:
                text = await r.text()
        assert 'dronetrack_supervisor_restarts_total{service="streams"} 1.0' in text
        assert 'dronetrack_supervisor_restarts_total{service="ingest"} 0.0' in text
        console.proc.send_signal(signal.SIGTERM)
        assert console.finish() == 0, console.text
    finally:
        console.kill()


async def test_a_killed_broker_is_restarted_and_the_services_with_it(tmp_path: Path) -> None:
    """Posting all along: every record that got 202 once the crash was known (so from the new
    broker: the dead one acknowledges nothing) is stored; none was answered 202 into topics the
    restarted broker did not have yet."""
    console = Console(run_env(tmp_path))
    accepted_after: set[tuple[str, int]] = set()
    try:
        token = await console.field("token")
        ingest = (await console.field("ingest")).removesuffix("/v1/telemetry")
        assert "broker     in memory only: if it crashes, records not yet stored are lost" in (
            await console.line("  broker ")
        )
        metrics = await console.field("restarts")
        await console.line("Press Ctrl-C")
        crashed = asyncio.Event()

        async def fly() -> None:
            i = 0
            async with aiohttp.ClientSession() as http:
                while len(accepted_after) < 100:
                    drone = f"crash-{i // 100}"
                    known = crashed.is_set()  # before the request went out
                    if await post(http, ingest, token, [good(drone, i)]) and known:
                        accepted_after.add((drone, i))
                    i += 1

        flying = asyncio.create_task(fly())
        os.kill(broker_pid(console.proc.pid), signal.SIGKILL)
        await console.line("the broker exited with code -9")
        crashed.set()
        await console.line("the broker is back")
        await asyncio.wait_for(flying, 90)
        drones = sorted({d for d, _ in accepted_after})

        async def all_stored() -> bool:
            store = open_store(Settings(sqlite_path=tmp_path / "store.sqlite3"))
            await store.open()
            try:
                tracks = [await store.track("demo", d, limit=100_000) for d in drones]
            finally:
                await store.close()
            have = {(d, p.seq) for d, t in zip(drones, tracks, strict=True) for p in t}
            return accepted_after <= have

        await eventually(all_stored, timeout=90, what="every record accepted after the crash")
        async with aiohttp.ClientSession() as http, http.get(metrics) as r:
            text = await r.text()
        assert 'dronetrack_supervisor_restarts_total{service="broker"} 1.0' in text
        console.proc.send_signal(signal.SIGTERM)
        assert console.finish() == 0, console.text
    finally:
        console.kill()


async def test_ctrl_c_in_steady_flight_loses_no_accepted_record(tmp_path: Path) -> None:
    console = Console(run_env(tmp_path), own_group=True)
    accepted = 0
    drones = [f"steady-{d}" for d in range(5)]
    try:
        token = await console.field("token")
        ingest = (await console.field("ingest")).removesuffix("/v1/telemetry")
        await console.line("Press Ctrl-C")

        async def fly() -> None:
            """Post until the run has ended (ingest refuses or is gone by then)."""
            nonlocal accepted
            i = 0
            async with aiohttp.ClientSession() as http:
                while console.proc.poll() is None:
                    batch = [good(d, i) for d in drones]
                    accepted += await post(http, ingest, token, batch)
                    i += 1

        flying = asyncio.create_task(fly())

        async def in_flight() -> bool:
            return accepted >= 500 and await stored(tmp_path, drones) > 0

        await eventually(in_flight, timeout=90, what="steady flight")
        # Ctrl-C in a terminal: SIGINT to every process of the foreground process group.
        os.killpg(console.proc.pid, signal.SIGINT)
        code = await asyncio.to_thread(console.finish)
        await flying
    finally:
        console.kill()
    assert code == 0, console.text
    assert await stored(tmp_path, drones) == accepted, console.text
    text = console.text
    assert text.index("stopping ingest") < text.index("stopping streams")
    assert text.index("stopping streams") < text.index("stopping the broker")


async def test_a_taken_port_is_named_with_its_setting(tmp_path: Path) -> None:
    env = run_env(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["DRONETRACK_DASHBOARD_PORT"])))
        holder.listen()
        run = subprocess.run(  # noqa: ASYNC221 - the run fails fast; nothing else to await
            [sys.executable, "-m", "dronetrack", "run", "--no-simulator"],
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
    assert run.returncode == 1
    port = env["DRONETRACK_DASHBOARD_PORT"]
    assert (
        f"port {port} (dashboard) is in use: stop what holds it, or choose another port with "
        "DRONETRACK_DASHBOARD_PORT=PORT (0: any free port)"
    ) in run.stderr.decode()


async def test_a_service_failing_at_every_start_makes_the_run_give_up_cleanly(
    tmp_path: Path,
) -> None:
    env = run_env(tmp_path)
    console = Console(env)
    try:
        await console.line("Press Ctrl-C")
        family = descendants(console.proc.pid)
        with socket.socket() as holder:
            os.kill(service_pid(console.proc.pid, "streams"), signal.SIGKILL)
            # Its port taken from now on: every restart of the worker fails at once.
            holder.bind(("127.0.0.1", int(env["DRONETRACK_STREAMS_WEB_PORT"])))
            holder.listen()
            await console.line("restart 4 in 8 s", timeout=120)
            await console.line("giving up and stopping everything", timeout=120)
            code = await asyncio.to_thread(console.finish)
    finally:
        console.kill()
    assert code == 1, console.text
    assert "streams exited with code 1 5 times in a row, each within 30 s of its start" in (
        console.text
    )
    assert "dronetrack stopped." in console.text
    assert not [pid for pid in family if alive(pid)], "a child process outlived `dronetrack run`"
