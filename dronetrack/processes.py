"""Child processes that cannot outlive their parent, and stop politely before they are killed."""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO

import aiohttp

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Linux only: the kernel sends SIGTERM to the child when the parent thread exits, so a
    # SIGKILLed supervisor leaves no broker or worker behind.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    output: IO[bytes] | int | None = None,
    own_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that is terminated when this process dies. With
    ``own_session`` a terminal's Ctrl-C reaches only us, so we decide the shutdown order."""
    return subprocess.Popen(
        list(argv),
        env=dict(os.environ if env is None else env),
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.STDOUT if output is not None else None,
        preexec_fn=_die_with_parent,  # noqa: PLW1509 - no threads run before the services start
        start_new_session=own_session,
    )


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, wait up to ``timeout`` for a graceful exit, then SIGKILL. Returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


class NotReady(RuntimeError):
    """A service did not become ready (or exited) in time."""


async def wait_ready(
    base_url: str,
    proc: subprocess.Popen[bytes] | None = None,
    name: str = "service",
    timeout: float = 30.0,
) -> None:
    """Poll ``base_url``/readyz until it answers 200; fail early if ``proc`` exits."""
    url = f"{base_url}/readyz"
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise NotReady(f"{name} exited with code {proc.returncode}")
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.05)
    raise NotReady(f"{name} was not ready at {url} after {timeout:.0f} s")
