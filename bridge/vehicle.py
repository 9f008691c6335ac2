"""MAVLink messages onto telemetry records: one ``Vehicle`` per system id gathers the latest
position, battery and status from the messages it sends, and makes a record from them on demand.

MAVLink marks an unknown value with a sentinel (``UINT16_MAX`` for headings and speeds, ``-1``
for battery percent, ``INT32_MAX`` for coordinates); a sentinel leaves the field unknown and is
never read as a number, so an unknown position can never become a drone at 0,0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from dronetrack.record import Status, TelemetryIn

UINT16_MAX = 65_535
INT32_MAX = 2_147_483_647
MAV_TYPE_GCS = 6
MAV_AUTOPILOT_INVALID = 8
MAV_MODE_FLAG_SAFETY_ARMED = 128
MAV_STATE_CRITICAL, MAV_STATE_EMERGENCY, MAV_STATE_FLIGHT_TERMINATION = 5, 6, 8
GPS_FIX_2D = 2

# Why a vehicle's state made no record (a label of bridge_records_total).
Skip = Literal["no_fix", "no_battery", "invalid"]
_validate = msgspec.json.Decoder(TelemetryIn)
_encode = msgspec.json.Encoder().encode


def _known(value: float, sentinel: float) -> float | None:
    return None if value == sentinel else value


def _degrees_e7(value: int) -> float | None:
    return None if value in (INT32_MAX, -INT32_MAX) else value / 1e7


@dataclass(slots=True)
class Vehicle:
    """What is known of one vehicle. ``position_ms`` is when its latest position was observed
    (the bridge's clock live, the log's clock on import); ``fresh`` says whether that position
    has been made into a record yet."""

    lat: float | None = None
    lon: float | None = None
    alt_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    vertical_speed_mps: float | None = None
    battery_pct: float | None = None
    status: Status | None = None
    h_accuracy_m: float | None = None
    v_accuracy_m: float | None = None
    has_fix: bool | None = None  # None: no GPS_RAW_INT seen, so the fix is not known
    global_position: bool = False  # GLOBAL_POSITION_INT seen: GPS_RAW_INT positions are ignored
    position_ms: int = 0
    fresh: bool = False

    def apply(self, msg: Any, at_ms: int) -> bool:
        """Take what ``msg`` says; True if it carried a new position."""
        kind = msg.get_type()
        if kind == "GLOBAL_POSITION_INT":
            return self._global_position(msg, at_ms)
        if kind == "GPS_RAW_INT":
            return self._gps_raw(msg, at_ms)
        if kind == "VFR_HUD":
            if self.speed_mps is None or not self.global_position:
                self.speed_mps = max(0.0, float(msg.groundspeed))
            if self.heading_deg is None:
                self.heading_deg = float(msg.heading) % 360.0
        elif kind in ("SYS_STATUS", "BATTERY_STATUS"):
            if msg.battery_remaining >= 0:
                self.battery_pct = float(min(100, msg.battery_remaining))
        elif kind == "HEARTBEAT":
            self._heartbeat(msg)
        return False

    def _global_position(self, msg: Any, at_ms: int) -> bool:
        lat, lon = _degrees_e7(msg.lat), _degrees_e7(msg.lon)
        if lat is None or lon is None or (msg.lat == 0 and msg.lon == 0):
            return False  # what an autopilot without a fix sends
        self.global_position = True
        self.lat, self.lon, self.alt_m = lat, lon, msg.alt / 1000.0
        self.speed_mps = math.hypot(msg.vx, msg.vy) / 100.0
        self.vertical_speed_mps = -msg.vz / 100.0  # NED: down is positive
        hdg = _known(msg.hdg, UINT16_MAX)
        if hdg is not None:
            self.heading_deg = (hdg / 100.0) % 360.0
        elif self.speed_mps > 0.5:
            self.heading_deg = math.degrees(math.atan2(msg.vy, msg.vx)) % 360.0
        return self._moved(at_ms)

    def _gps_raw(self, msg: Any, at_ms: int) -> bool:
        self.has_fix = msg.fix_type >= GPS_FIX_2D
        h_acc = getattr(msg, "h_acc", 0)  # MAVLink 2 extension, 0 when unknown or MAVLink 1
        v_acc = getattr(msg, "v_acc", 0)
        self.h_accuracy_m = h_acc / 1000.0 if h_acc else None
        self.v_accuracy_m = v_acc / 1000.0 if v_acc else None
        if self.global_position or not self.has_fix:
            return False
        lat, lon = _degrees_e7(msg.lat), _degrees_e7(msg.lon)
        if lat is None or lon is None:
            return False
        self.lat, self.lon, self.alt_m = lat, lon, msg.alt / 1000.0
        vel, cog = _known(msg.vel, UINT16_MAX), _known(msg.cog, UINT16_MAX)
        if vel is not None:
            self.speed_mps = vel / 100.0
        if cog is not None:
            self.heading_deg = (cog / 100.0) % 360.0
        return self._moved(at_ms)

    def _heartbeat(self, msg: Any) -> None:
        if msg.type == MAV_TYPE_GCS or msg.autopilot == MAV_AUTOPILOT_INVALID:
            return  # a ground station's or a peripheral's heartbeat says nothing of the vehicle
        if msg.system_status == MAV_STATE_FLIGHT_TERMINATION:
            self.status = "system_failure"
        elif msg.system_status in (MAV_STATE_CRITICAL, MAV_STATE_EMERGENCY):
            self.status = "emergency"
        elif msg.base_mode & MAV_MODE_FLAG_SAFETY_ARMED:
            self.status = "airborne"
        else:
            self.status = "ground"

    def _moved(self, at_ms: int) -> bool:
        self.position_ms, self.fresh = at_ms, True
        return True

    def record(self, drone_id: str) -> bytes | Skip:
        """The latest position as a record's JSON, validated against the record schema, or why
        there is none. Marks the position as used."""
        self.fresh = False
        if self.has_fix is False or self.lat is None or self.lon is None or self.alt_m is None:
            return "no_fix"
        if self.battery_pct is None:
            return "no_battery"
        body = _encode(
            TelemetryIn(
                drone_id=drone_id,
                ts=self.position_ms,
                lat=self.lat,
                lon=self.lon,
                alt_m=self.alt_m,
                speed_mps=self.speed_mps or 0.0,
                heading_deg=self.heading_deg or 0.0,
                battery_pct=self.battery_pct,
                status=self.status,
                vertical_speed_mps=self.vertical_speed_mps,
                h_accuracy_m=self.h_accuracy_m,
                v_accuracy_m=self.v_accuracy_m,
            )
        )
        try:
            _validate.decode(body)
        except msgspec.ValidationError:
            return "invalid"
        return body
