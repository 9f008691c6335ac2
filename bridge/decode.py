"""Bytes to vehicles: parse MAVLink 1 and 2 frames per source, and keep one ``Vehicle`` per
system id. A vehicle heard on two links (a radio and a cellular modem) is the same drone, so
its positions merge, latest first; two different vehicles configured with one system id cannot
be told apart, and the docs say to give each its own."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

from pymavlink.dialects.v20 import common as mavlink

from bridge.metrics import BridgeMetrics
from bridge.vehicle import Skip, Vehicle

log = logging.getLogger(__name__)

USED = frozenset(
    ("GLOBAL_POSITION_INT", "GPS_RAW_INT", "VFR_HUD", "SYS_STATUS", "BATTERY_STATUS", "HEARTBEAT")
)


def drone_ids(prefix: str, mapping: str) -> dict[int, str]:
    """``"1=alpha,2=beta"`` as {1: "alpha", 2: "beta"}; other system ids get ``prefix + id``."""
    ids: dict[int, str] = {}
    for pair in filter(None, (p.strip() for p in mapping.split(","))):
        sysid, sep, name = pair.partition("=")
        if not sep or not sysid.strip().isdigit() or not name.strip():
            raise ValueError(f"{pair!r} is not SYSID=DRONE_ID")
        ids[int(sysid)] = name.strip()
    return ids


class Fleet:
    """The vehicles heard so far and the parsers that hear them."""

    def __init__(self, metrics: BridgeMetrics, prefix: str, ids: dict[int, str]) -> None:
        self.metrics = metrics
        self.prefix = prefix
        self.ids = ids
        self.vehicles: dict[int, Vehicle] = {}
        self._parsers: dict[object, Any] = {}
        self._links: dict[int, object] = {}
        m = metrics.messages
        self._used, self._ignored, self._corrupt = (
            m.labels("used"),
            m.labels("ignored"),
            m.labels("corrupt"),
        )

    def drone_id(self, sysid: int) -> str:
        return self.ids.get(sysid) or f"{self.prefix}{sysid}"

    def feed(self, data: bytes, source: object, at_ms: int) -> None:
        """Parse what ``source`` sent and apply it; corrupt bytes are counted and skipped."""
        parser = self._parsers.get(source)
        if parser is None:
            parser = self._parsers[source] = mavlink.MAVLink(None)
            parser.robust_parsing = True  # bad bytes become BAD_DATA messages, not exceptions
        try:
            messages = parser.parse_buffer(data) or ()
        except mavlink.MAVError:
            self._corrupt.inc()
            return
        self.apply(messages, source, at_ms)

    def apply(self, messages: Iterable[Any], source: object, at_ms: int) -> None:
        for msg in messages:
            kind = msg.get_type()
            if kind == "BAD_DATA":
                self._corrupt.inc()
                continue
            if kind not in USED:
                self._ignored.inc()
                continue
            sysid = msg.get_srcSystem()
            vehicle = self.vehicles.get(sysid)
            if vehicle is None:
                vehicle = self.vehicles[sysid] = Vehicle()
                self._links[sysid] = source
                self.metrics.vehicles.set(len(self.vehicles))
                log.info("vehicle heard", extra={"sysid": sysid, "drone": self.drone_id(sysid)})
            elif self._links.get(sysid) not in (source, None) and kind == "HEARTBEAT":
                log.warning(
                    "system id heard on a second link: taken as the same drone",
                    extra={"sysid": sysid, "drone": self.drone_id(sysid)},
                )
                self._links[sysid] = None  # warn once
            vehicle.apply(msg, at_ms)
            self._used.inc()

    def records(self) -> Iterator[tuple[str, bytes | Skip]]:
        """(drone id, record) for every vehicle with a position not yet made into one: the
        latest position wins."""
        for sysid, vehicle in self.vehicles.items():
            if vehicle.fresh:
                drone = self.drone_id(sysid)
                yield drone, vehicle.record(drone)
