"""``python -m bench.bridge``: what one MAVLink bridge process carries.

1. decode: 100 simulated vehicles send MAVLink 2 frames over UDP (one frame a datagram, as an
   autopilot sends them) at ``--rates`` messages/s in all; prints the messages the bridge took
   per second and the CPU it used (cores). A frame the bridge did not take was lost in the
   kernel's socket buffer: the bridge fell behind.
2. drain: a queue filled with ``--queue-records`` records while ingest was away is sent into a
   real ingest process on the embedded broker; prints records/s until the queue is empty.

The bridge, ingest, the broker and this client share the machine's cores: figures are a lower
bound of what the bridge does on a core of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import msgspec
from prometheus_client.parser import text_string_to_metric_families
from pymavlink.dialects.v20 import common as mavlink

from bench.ingest import cpu_seconds
from bridge.spool import Spool, lane_key
from dronetrack import processes, tokens
from dronetrack.broker import EmbeddedBroker, free_port
from dronetrack.record import TelemetryIn
from dronetrack.settings import Settings

VEHICLES = 100


def frames_of(sysid: int, n: int) -> list[bytes]:
    """One second of a vehicle's stream: mostly positions, with its heartbeat, battery,
    VFR_HUD and attitude (which the bridge reads past)."""
    mav = mavlink.MAVLink(None, srcSystem=sysid, srcComponent=1)
    out = []
    for i in range(n):
        match i % 5:
            case 0:
                msg = mavlink.MAVLink_heartbeat_message(2, 3, 129, 0, 4, 3)
            case 1:
                msg = mavlink.MAVLink_sys_status_message(*[0] * 6, 80, *[0] * 6)
            case 2:
                msg = mavlink.MAVLink_attitude_message(i, 0.1, 0.2, 0.3, 0, 0, 0)
            case 3:
                msg = mavlink.MAVLink_vfr_hud_message(10.0, 9.5, 90, 50, 480.0, 0.5)
            case _:
                msg = mavlink.MAVLink_global_position_int_message(
                    i,
                    470_000_000 + sysid * 10_000 + i,
                    85_000_000,
                    480_000,
                    60_000,
                    300,
                    0,
                    0,
                    9_000,
                )
        out.append(msg.pack(mav))
    return out


async def metric(port: int, name: str, **labels: str) -> float:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as r,
    ):
        text = await r.text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return float(sample.value)
    raise LookupError(name)


async def wait_answering(port: int, proc: object) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            await metric(port, "bridge_vehicles")
            return
        except (aiohttp.ClientError, LookupError):
            await asyncio.sleep(0.1)
    raise RuntimeError("the bridge did not answer")


async def decode(settings: Settings, workdir: Path, rate: int, seconds: float) -> None:
    udp_port = free_port()
    metrics_port = free_port()
    s = settings.replace(
        bridge_connect=f"udp:127.0.0.1:{udp_port}",
        bridge_metrics_port=metrics_port,
        bridge_queue_path=workdir / f"decode-{rate}.sqlite3",
    )
    with (workdir / "bridge.log").open("ab") as log:
        proc = processes.spawn(
            [sys.executable, "-m", "bridge"], env={**os.environ, **s.to_env()}, output=log
        )
    try:
        await wait_answering(metrics_port, proc)
        per_vehicle = max(1, rate // VEHICLES)
        streams = [frames_of(sysid, per_vehicle) for sysid in range(1, VEHICLES + 1)]
        # one second's frames, interleaved across vehicles as they would arrive
        second = [streams[v][i] for i in range(per_vehicle) for v in range(VEHICLES)]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        target = ("127.0.0.1", udp_port)
        used0 = await metric(metrics_port, "bridge_mavlink_messages_total", outcome="used")
        ignored0 = await metric(metrics_port, "bridge_mavlink_messages_total", outcome="ignored")
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        sent = 0
        slices = 100  # send in 10 ms slices to keep the rate even
        per_slice = len(second) // slices
        while time.monotonic() - t0 < seconds:
            for k in range(slices):
                for frame in second[k * per_slice : (k + 1) * per_slice]:
                    sock.sendto(frame, target)
                sent += per_slice
                due = t0 + sent / rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
        await asyncio.sleep(0.5)  # let the bridge read what the socket holds
        wall = time.monotonic() - t0
        cpu = cpu_seconds(proc.pid) - cpu0
        taken = (
            await metric(metrics_port, "bridge_mavlink_messages_total", outcome="used")
            - used0
            + await metric(metrics_port, "bridge_mavlink_messages_total", outcome="ignored")
            - ignored0
        )
        sock.close()
        print(
            f"decode  {VEHICLES} vehicles, {sent / (wall - 0.5):8,.0f} msg/s sent: "
            f"{taken / (wall - 0.5):8,.0f} msg/s taken ({taken / sent:6.1%}), "
            f"bridge CPU {cpu / wall:.2f} cores ({cpu / max(taken, 1) * 1e6:.0f} µs/msg)",
            flush=True,
        )
    finally:
        processes.stop(proc, 30.0)


async def drain(settings: Settings, workdir: Path, ingest_url: str, records: int) -> None:
    path = workdir / "drain.sqlite3"
    spool = Spool(path, max_records=records)
    encode = msgspec.json.Encoder().encode
    t_base = int(time.time() * 1000) - 3_600_000
    chunk = 100_000
    for start in range(0, records, chunk):
        spool.push(
            [
                (
                    lane_key(f"mav-{i % 1000}"),
                    encode(
                        TelemetryIn(
                            drone_id=f"mav-{i % 1000}",
                            ts=t_base + i // 1000,
                            lat=47.0 + (i % 1000) / 1e4,
                            lon=8.5,
                            alt_m=480.0,
                            speed_mps=9.5,
                            heading_deg=90.0,
                            battery_pct=80.0,
                            status="airborne",
                        )
                    ),
                )
                for i in range(start, min(records, start + chunk))
            ]
        )
    spool.close()
    metrics_port = free_port()
    s = settings.replace(
        bridge_connect=f"udp:127.0.0.1:{free_port()}",
        bridge_metrics_port=metrics_port,
        bridge_queue_path=path,
        bridge_ingest_url=ingest_url,
        bridge_queue_max_records=records,
        bridge_batch_records=1_000,
    )
    t0 = time.monotonic()
    with (workdir / "bridge.log").open("ab") as log:
        proc = processes.spawn(
            [sys.executable, "-m", "bridge"], env={**os.environ, **s.to_env()}, output=log
        )
    try:
        await wait_answering(metrics_port, proc)
        # Timed from the first answer: the process's start-up (imports) is not draining.
        t1, cpu0 = time.monotonic(), cpu_seconds(proc.pid)
        sent0 = await metric(metrics_port, "bridge_records_total", outcome="sent")
        while True:
            if await metric(metrics_port, "bridge_queue_records") == 0:
                break
            await asyncio.sleep(0.2)
        t2 = time.monotonic()
        sent = await metric(metrics_port, "bridge_records_total", outcome="sent")
        refused = await metric(metrics_port, "bridge_records_total", outcome="refused")
        print(
            f"drain   {records:,} queued records: {(sent - sent0) / (t2 - t1):8,.0f} records/s "
            f"({t2 - t0:.1f} s from the process's start to empty, {t1 - t0:.1f} s of it "
            f"starting; {sent:,.0f} sent, {refused:.0f} refused), "
            f"bridge CPU {(cpu_seconds(proc.pid) - cpu0) / (t2 - t1):.2f} cores",
            flush=True,
        )
    finally:
        processes.stop(proc, 30.0)


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-bridge-"))
    broker = EmbeddedBroker(Settings.from_env({}), log_path=workdir / "broker.log")
    await broker.start()
    token = tokens.create(workdir / "tokens", "bench")
    (workdir / "bridge-token").write_text(token)
    port = free_port()
    settings = broker.settings.replace(
        ingest_port=port,
        ingest_tokens_file=workdir / "tokens",
        ingest_rate_limit_rps=0.0,
        bridge_token_file=workdir / "bridge-token",
        bridge_ingest_url=f"http://127.0.0.1:{port}",
        log_level="WARNING",
    )
    with (workdir / "ingest.log").open("ab") as log:
        ingest = processes.spawn(
            [sys.executable, "-m", "ingest"], env={**os.environ, **settings.to_env()}, output=log
        )
    try:
        await processes.wait_ready(f"http://127.0.0.1:{port}", ingest, "ingest")
        print(f"# logs in {workdir}", flush=True)
        for rate in args.rates:
            await decode(settings, workdir, rate, args.seconds)
        if args.queue_records:
            await drain(settings, workdir, f"http://127.0.0.1:{port}", args.queue_records)
    finally:
        processes.stop(ingest, 30.0)
        await broker.stop()


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rates", type=int, nargs="*", default=[5_000, 10_000])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--queue-records", type=int, default=1_000_000)
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
