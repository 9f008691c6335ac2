"""Where MAVLink bytes come from: UDP (vehicles or a router sending to us), a TCP stream (a
vehicle or SITL listening), or a serial port (a telemetry radio). Each source gets a parser of
its own, as a byte stream's frames may be split across reads."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

Feed = Callable[[bytes, object], None]  # (bytes, source key) -> None


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed ``--connect`` value: ``udp:HOST:PORT``, ``tcp:HOST:PORT`` or
    ``serial:DEVICE[:BAUD]``."""

    kind: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        kind, _, rest = text.partition(":")
        if kind == "serial":
            device, _, baud = rest.partition(":")
            if not device:
                raise ValueError(f"{text!r}: give the device, serial:/dev/ttyUSB0[:57600]")
            return cls(kind, device, int(baud or 57_600))
        host, _, port = rest.rpartition(":")
        if kind not in ("udp", "tcp") or not host or not port.isdigit():
            raise ValueError(
                f"{text!r} is not udp:HOST:PORT, tcp:HOST:PORT or serial:DEVICE[:BAUD]"
            )
        return cls(kind, host, int(port))

    def __str__(self) -> str:
        return f"{self.kind}:{self.host}:{self.port}"


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.feed(data, addr)


# The kernel's default UDP buffer holds a few hundred small datagrams: a moment of the process
# not being scheduled at 5,000 messages/s lost 40 % of them (bench/bridge.py). The kernel caps
# the size at net.core.rmem_max.
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024


async def listen_udp(endpoint: Endpoint, feed: Feed) -> asyncio.DatagramTransport:
    sock = socket.socket(
        socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET, socket.SOCK_DGRAM
    )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
    sock.bind((endpoint.host, endpoint.port))
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Datagrams(feed), sock=sock
    )
    return transport


async def follow_tcp(endpoint: Endpoint, feed: Feed, retry_s: float = 2.0) -> None:
    """Read a TCP stream for ever, reconnecting (a vehicle reboots, a radio drops)."""
    while True:
        try:
            reader, writer = await asyncio.open_connection(endpoint.host, endpoint.port)
        except OSError as exc:
            log.warning("cannot connect", extra={"link": str(endpoint), "error": str(exc)})
            await asyncio.sleep(retry_s)
            continue
        log.info("connected", extra={"link": str(endpoint)})
        key = (str(endpoint), id(reader))  # a fresh parser per connection
        try:
            while data := await reader.read(65_536):
                feed(data, key)
        except OSError as exc:
            log.warning("link lost", extra={"link": str(endpoint), "error": str(exc)})
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await asyncio.sleep(retry_s)


def read_serial(endpoint: Endpoint, feed: Feed, stop: threading.Event) -> threading.Thread:
    """A serial port is read in a thread (pyserial blocks); bytes are handed to the loop."""
    import serial  # pyserial, which pymavlink installs

    loop = asyncio.get_running_loop()

    def run() -> None:
        with serial.Serial(endpoint.host, endpoint.port, timeout=0.5) as port:
            while not stop.is_set():
                data = port.read(4096)
                if data:
                    loop.call_soon_threadsafe(feed, data, str(endpoint))

    thread = threading.Thread(target=run, name=f"serial {endpoint.host}", daemon=True)
    thread.start()
    return thread
