"""MAVLink messages, encoded by pymavlink as a vehicle would send them, onto records: the
expected records are written out by hand from the messages' documented units."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymavlink.dialects.v20 import common as mavlink

from bridge.decode import Fleet, drone_ids
from bridge.links import Endpoint
from bridge.metrics import BridgeMetrics
from bridge.spool import Spool

T = 1_764_600_000_000
ARMED = 128 | 1  # MAV_MODE_FLAG_SAFETY_ARMED | custom mode enabled


def frames(sysid: int, *messages: object) -> bytes:
    tx = mavlink.MAVLink(None, srcSystem=sysid, srcComponent=1)
    return b"".join(m.pack(tx) for m in messages)


def heartbeat(base_mode: int = ARMED, state: int = 4, type_: int = 2, autopilot: int = 3) -> object:
    return mavlink.MAVLink_heartbeat_message(type_, autopilot, base_mode, 0, state, 3)


def sys_status(battery: int) -> object:
    return mavlink.MAVLink_sys_status_message(0, 0, 0, 500, 12_000, -1, battery, 0, 0, 0, 0, 0, 0)


def global_position(
    lat: int = 473_769_000, lon: int = 85_417_000, hdg: int = 9_000, vx: int = 300, vy: int = 400
) -> object:
    # alt 512 m MSL, relative 100 m, climbing at 1 m/s (vz is down-positive)
    return mavlink.MAVLink_global_position_int_message(
        1000, lat, lon, 512_000, 100_000, vx, vy, -100, hdg
    )


def gps_raw(fix: int, lat: int = 473_770_000, vel: int = 650, cog: int = 18_000) -> object:
    return mavlink.MAVLink_gps_raw_int_message(
        0, fix, lat, 85_418_000, 430_000, 120, 200, vel, cog, 9, 0, 2_500, 4_000, 0, 0, 0
    )


def fleet(ids: str = "") -> tuple[Fleet, BridgeMetrics]:
    metrics = BridgeMetrics(CollectorRegistry())
    return Fleet(metrics, "mav-", drone_ids("mav-", ids)), metrics


def records(f: Fleet) -> list[Any]:
    return [json.loads(r) if isinstance(r, bytes) else r for _, r in f.records()]


def test_a_flying_vehicle_becomes_a_record_in_record_units() -> None:
    f, _ = fleet()
    f.feed(frames(7, heartbeat(), sys_status(87), global_position()), "udp", T)
    assert records(f) == [
        {
            "drone_id": "mav-7",
            "ts": T,
            "lat": 47.3769,
            "lon": 8.5417,
            "alt_m": 512.0,
            "speed_mps": 5.0,
            "heading_deg": 90.0,
            "battery_pct": 87.0,
            "status": "airborne",
            "vertical_speed_mps": 1.0,
        }
    ]
    assert records(f) == [], "a position is made into a record once"


def test_latest_position_wins_between_ticks() -> None:
    f, _ = fleet()
    f.feed(frames(1, sys_status(50), global_position(lat=470_000_000)), "a", T)
    f.feed(frames(1, global_position(lat=471_000_000)), "a", T + 100)
    [only] = records(f)
    assert (only["lat"], only["ts"]) == (47.1, T + 100)


def test_sentinels_mean_unknown_never_zero() -> None:
    f, _ = fleet()
    # hdg UINT16_MAX = unknown: the heading comes from the velocity (east = 90 degrees)
    f.feed(frames(2, sys_status(60), global_position(hdg=65_535, vx=0, vy=500)), "a", T)
    assert records(f)[0]["heading_deg"] == 90.0
    # battery -1 = unknown: the last known value stays
    f.feed(frames(2, sys_status(-1), global_position()), "a", T + 1)
    assert records(f)[0]["battery_pct"] == 60.0
    # lat/lon INT32_MAX, or 0/0 (what ArduPilot sends without a fix): no position at all
    f.feed(frames(3, sys_status(60), global_position(lat=2_147_483_647)), "a", T)
    f.feed(frames(4, sys_status(60), global_position(lat=0, lon=0)), "a", T)
    assert records(f) == []


def test_no_fix_no_record_and_counted() -> None:
    f, _ = fleet()
    f.feed(frames(5, sys_status(70), gps_raw(fix=3)), "a", T)
    assert records(f)[0] == {  # GPS_RAW_INT alone: its own position, speed and course
        "drone_id": "mav-5",
        "ts": T,
        "lat": 47.377,
        "lon": 8.5418,
        "alt_m": 430.0,
        "speed_mps": 6.5,
        "heading_deg": 180.0,
        "battery_pct": 70.0,
        "h_accuracy_m": 2.5,
        "v_accuracy_m": 4.0,
    }
    f.feed(frames(5, gps_raw(fix=1)), "a", T + 1)  # fix lost: the old position is not re-sent
    assert records(f) == []
    f.feed(frames(6, gps_raw(fix=3), global_position()), "a", T)  # no battery told yet
    assert records(f) == ["no_battery"]


def test_heartbeat_status() -> None:
    f, _ = fleet()
    cases = [
        (heartbeat(base_mode=1, state=3), "ground"),
        (heartbeat(base_mode=ARMED, state=4), "airborne"),
        (heartbeat(state=6), "emergency"),
        (heartbeat(state=8), "system_failure"),
    ]
    for hb, expected in cases:
        f.feed(frames(9, sys_status(90), hb, global_position()), "a", T)
        assert records(f)[0]["status"] == expected
    # a ground station's heartbeat (type 6, autopilot 8) changes nothing
    f.feed(
        frames(9, heartbeat(base_mode=0, state=3, type_=6, autopilot=8), global_position()), "a", T
    )
    assert records(f)[0]["status"] == "system_failure"


def test_corrupt_and_unknown_bytes_are_counted_not_fatal() -> None:
    f, metrics = fleet("9=alpha")
    f.feed(frames(9, sys_status(40)), "a", T)
    broken = bytearray(frames(9, global_position(lat=460_000_000)))
    broken[12] ^= 0xFF  # inside the payload: the frame's checksum no longer matches
    f.feed(bytes(broken) + b"\x00garbage" + frames(9, global_position()), "a", T)
    f.feed(frames(9, mavlink.MAVLink_attitude_message(0, 0.1, 0.2, 0.3, 0, 0, 0)), "a", T)
    [made] = records(f)
    assert (made["drone_id"], made["lat"]) == ("alpha", 47.3769)
    assert metrics.messages.labels("corrupt")._value.get() >= 1
    assert metrics.messages.labels("ignored")._value.get() == 1


def test_drone_id_mapping_and_link_syntax() -> None:
    assert drone_ids("mav-", " 1=alpha, 2=beta ") == {1: "alpha", 2: "beta"}
    with pytest.raises(ValueError, match="SYSID=DRONE_ID"):
        drone_ids("mav-", "one=alpha")
    assert Endpoint.parse("udp:0.0.0.0:14550") == Endpoint("udp", "0.0.0.0", 14550)  # noqa: S104
    assert Endpoint.parse("serial:/dev/ttyUSB0") == Endpoint("serial", "/dev/ttyUSB0", 57_600)
    with pytest.raises(ValueError, match="udp:HOST:PORT"):
        Endpoint.parse("udp:14550")


def test_spool_keeps_order_across_reopen_and_drops_oldest_past_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    spool = Spool(path, max_records=5)
    assert spool.push([(1, b"1"), (2, b"2"), (1, b"3")]) == 0
    assert spool.push([(2, b"4"), (1, b"5"), (2, b"6"), (1, b"7")]) == 2  # 1 and 2 made room
    spool.close()
    spool = Spool(path, max_records=5)
    assert spool.count == 5
    rows = spool.peek(3)
    assert [(lane, body) for _, lane, body in rows] == [(1, b"3"), (2, b"4"), (1, b"5")]
    spool.remove([rows[0][0], rows[2][0]])
    assert spool.count == 3
    assert [body for _, _, body in spool.peek(10)] == [b"4", b"6", b"7"]
