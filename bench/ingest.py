"""``python -m bench.ingest``: throughput and latency of one ingest process over loopback.

Starts the embedded broker and one ingest service (``python -m ingest``) as processes of their
own, then drives ingest from this process (on uvloop) or from ``wrk`` (``--wrk``):

1. closed loop: ``--connections`` clients post as fast as answers come back, for single-record
   requests and for 100-record batches: records/s, requests/s, p50/p99 latency;
2. open loop at half the measured request rate: p50/p99 latency at that load.

With ``--instructions`` it counts instead, under callgrind, the instructions per single-record
request of a bare aiohttp handler and of ingest: a figure a busy machine does not move.

Every 202 counted here was sent after the broker acknowledged all of its records (acks=all).
The machine is shared and has 2 cores for the broker, ingest and this client together, so the
rates are noisy and a lower bound of what ingest does on a core of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import msgspec

from dronetrack import processes, tokens
from dronetrack.broker import EmbeddedBroker, free_port
from dronetrack.settings import Settings
from dronetrack.simulator import make_fleet


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux), to tell work from waiting for a core."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    label: str
    seconds: float
    requests: int
    records: int
    failures: int
    p50_ms: float
    p99_ms: float
    cpu: dict[str, float] = field(default_factory=dict)  # process -> CPU seconds used

    @classmethod
    def of(
        cls, label: str, seconds: float, batch: int, failures: int, latencies: list[float]
    ) -> Result:
        lat = sorted(latencies) or [0.0]
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        n = len(latencies)
        return cls(label, seconds, n, n * batch, failures, p50 * 1000, p99 * 1000)

    def line(self) -> str:
        p50, p99 = self.p50_ms, self.p99_ms
        cpu = "  ".join(
            f"{name} {used / self.seconds:4.0%} ({used / max(self.records, 1) * 1e6:.1f} us/rec)"
            for name, used in self.cpu.items()
        )
        return (
            f"{self.label:<34} {self.records / self.seconds:>10,.0f} rec/s "
            f"{self.requests / self.seconds:>9,.0f} req/s   p50 {p50:6.2f} ms   "
            f"p99 {p99:6.2f} ms   non-202: {self.failures}   CPU: {cpu}"
        )


async def measured(pids: dict[str, int], run: Awaitable[Result]) -> Result:
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    result = await run
    result.cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    return result


def bodies(batch: int, count: int = 500, drones: int = 1000) -> list[bytes]:
    """Distinct request bodies of ``batch`` records each, stamped now, taking the drones of a
    fleet of ``drones`` in turn, so records spread over partitions as a real fleet's do."""
    fleet = make_fleet(max(batch, drones), prefix="bench")
    encoder = msgspec.json.Encoder()
    now = time.time_ns() // 1_000_000
    out = []
    turn = itertools.cycle(fleet)
    for i in range(count):
        reports = []
        for _ in range(batch):
            drone = next(turn)
            drone.step(0.1)
            reports.append(drone.report(now + i))
        out.append(encoder.encode(reports[0] if batch == 1 else reports))
    return out


async def closed_loop(url: str, token: str, batch: int, connections: int, seconds: float) -> Result:
    payloads = itertools.cycle(bodies(batch))
    latencies: list[float] = []
    counts = {"failures": 0}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:
        end = time.perf_counter() + seconds

        async def client() -> None:
            while time.perf_counter() < end:
                started = time.perf_counter()
                async with http.post(url, data=next(payloads)) as response:
                    await response.read()
                    if response.status == 202:
                        latencies.append(time.perf_counter() - started)
                    else:
                        counts["failures"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(connections)))
        took = time.perf_counter() - started
    label = f"batch {batch:>3}, {connections} connections"
    return Result.of(label, took, batch, counts["failures"], latencies)


async def open_loop(
    url: str, token: str, batch: int, *, rate: float, seconds: float, connections: int
) -> Result:
    """Requests at a fixed rate whatever the answers, so latency is measured at that load; each
    from its scheduled start, so waiting for a free connection counts too. The client speaks
    HTTP/1.1 over plain streams: aiohttp's client costs ~340 us a request, so at a few thousand
    requests/s it fell behind its own schedule and measured itself instead of the service."""
    parsed = urlsplit(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    requests = itertools.cycle(
        [
            (
                f"POST {parsed.path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
            for body in bodies(batch)
        ]
    )
    # A pool as large as the closed loop's: opening a connection per request would overflow
    # the listen backlog and measure SYN retries instead of the service.
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(host, port))
    latencies: list[float] = []
    failures = 0

    async def one(request: bytes, started: float) -> None:
        nonlocal failures
        reader, writer = await idle.get()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        await reader.readexactly(int(length[1]) if length else 0)
        idle.put_nowait((reader, writer))
        if head.startswith(b"HTTP/1.1 202 "):
            latencies.append(time.perf_counter() - started)
        else:
            failures += 1

    # Only the requests still in flight are held: a list of every finished task (tens of
    # thousands) made this process's garbage collector pause for tens of milliseconds, and the
    # pauses showed up as ingest's p99.
    pending: set[asyncio.Task[None]] = set()
    interval = 1.0 / rate
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        scheduled = start + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(next(requests), scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    took = time.perf_counter() - start
    while not idle.empty():
        idle.get_nowait()[1].close()
    label = f"batch {batch:>3}, open loop {rate:,.0f} req/s"
    return Result.of(label, took, batch, failures, latencies)


async def fixed_count(url: str, token: str, requests: int, connections: int) -> int:
    """``requests`` single-record requests over ``connections`` connections; returns how many
    were not answered 202."""
    payloads = itertools.cycle(bodies(1))
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    left, failures = requests, 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as http:

        async def client() -> None:
            nonlocal left, failures
            while left > 0:
                left -= 1
                async with http.post(url, data=next(payloads)) as response:
                    await response.read()
                    failures += response.status != 202

        await asyncio.gather(*(client() for _ in range(connections)))
    return failures


async def callgrind_control(option: str, pid: int) -> None:
    control = await asyncio.create_subprocess_exec(
        "callgrind_control",
        option,
        str(pid),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    if await control.wait():
        raise RuntimeError(f"callgrind_control {option} {pid} failed")


async def instructions(
    name: str,
    argv: list[str],
    *,
    env: dict[str, str],
    base: str,
    token: str,
    args: argparse.Namespace,
) -> float:
    """Instructions a server runs per single-record request, counted by callgrind from its
    first request after a warm-up to its last: the same figure on a busy machine as on a quiet
    one, where requests/s are not. (Kernel time is not in it.)"""
    out = Path(tempfile.mkdtemp(prefix=f"bench-{name}-")) / "callgrind.out"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    with out.with_suffix(".log").open("ab") as log:
        proc = processes.spawn(
            [*valgrind, f"--callgrind-out-file={out}", *argv], env=env, output=log
        )
    try:
        await processes.wait_ready(base, proc, name, timeout=300)
        url = f"{base}/v1/telemetry"
        await fixed_count(url, token, 300, args.connections)  # warm up
        await callgrind_control("--instr=on", proc.pid)
        failures = await fixed_count(url, token, args.requests, args.connections)
        await callgrind_control("--dump", proc.pid)
    finally:
        processes.stop(proc, 60.0)
    if failures:
        raise RuntimeError(f"{name}: {failures} requests not answered 202 (see {out.parent})")
    for dump in out.parent.glob(f"{out.name}.*"):
        text = dump.read_text()
        if "Trigger: dump" in text[:4096]:
            summary = re.search(r"^summary:\s+(\d+)", text, re.M)
            assert summary is not None, dump
            counted: int = args.requests
            return int(summary[1]) / counted
    raise RuntimeError(f"{name}: callgrind wrote no dump in {out.parent}")


async def wrk_loop(url: str, token: str, batch: int, connections: int, seconds: float) -> Result:
    """The closed loop driven by wrk (C, far less client CPU than aiohttp's client)."""
    # wrk takes the bodies in turn (a Lua table), as the aiohttp clients do.
    texts = [b.decode() for b in bodies(batch, 1000 if batch == 1 else 20)]
    script = Path(tempfile.mkdtemp(prefix="bench-wrk-")) / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Authorization"] = "Bearer {token}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        "local bodies = {\n" + "".join(f"[==[{text}]==],\n" for text in texts) + "}\n"
        "local i = 0\n"
        "request = function()\n"
        "  i = i % #bodies + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[i])\n"
        "end\n"
    )
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", "-s", str(script)]
    proc = await asyncio.create_subprocess_exec(
        *argv, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out = (await proc.communicate())[0].decode()
    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    failures = int(failed[1]) if failed else 0
    # The latency distribution's lines (a stdev column elsewhere may also end in "50%").
    p50 = _wrk_ms(re.search(r"^\s+50%\s+(\S+)$", out, re.M)[1])  # type: ignore[index]
    p99 = _wrk_ms(re.search(r"^\s+99%\s+(\S+)$", out, re.M)[1])  # type: ignore[index]
    n = total - failures
    label = f"batch {batch:>3}, {connections} conns (wrk)"
    return Result(label, seconds, n, n * batch, failures, p50, p99)


def _wrk_ms(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text.removesuffix(unit)) * factor
    return float(text)


async def main(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    broker = EmbeddedBroker(Settings.from_env({}), log_path=workdir / "broker.log")
    await broker.start()
    token = tokens.create(workdir / "tokens", "bench")
    port = free_port()
    settings = broker.settings.replace(
        ingest_port=port,
        ingest_tokens_file=workdir / "tokens",
        ingest_rate_limit_rps=0.0,
        ingest_max_batch_records=1000,
        log_level="WARNING",
    )
    env = {**os.environ, **settings.to_env()}
    argv = [sys.executable, "-m", "ingest"]
    if args.instructions:
        try:
            await count_instructions(args, settings, env, token)
        finally:
            await broker.stop()
        return
    if args.profile:
        argv = ["py-spy", "record", "-o", str(args.profile), "-f", "speedscope", "--", *argv]
    with (workdir / "ingest.log").open("ab") as log:
        ingest = processes.spawn(argv, env=env, output=log)
    base = f"http://127.0.0.1:{port}"
    try:
        await baseline(args)
        await processes.wait_ready(base, ingest, "ingest")
        print(f"# ingest pid {ingest.pid}, broker {broker.bootstrap_servers}, logs {workdir}")
        url = f"{base}/v1/telemetry"
        pids = {"ingest": ingest.pid, "broker": broker.pid, "client": os.getpid()}
        for batch in args.batch:
            await closed_loop(url, token, batch, args.connections, 1.0)  # warm up
            driver = wrk_loop if args.wrk else closed_loop
            peak = await measured(pids, driver(url, token, batch, args.connections, args.seconds))
            print(peak.line(), flush=True)
            half = peak.requests / peak.seconds / 2
            at_half = await measured(
                pids,
                open_loop(
                    url, token, batch, rate=half, seconds=args.seconds, connections=args.connections
                ),
            )
            print(at_half.line(), flush=True)
    finally:
        processes.stop(ingest, 30.0)
        await broker.stop()


async def count_instructions(
    args: argparse.Namespace, settings: Settings, env: dict[str, str], token: str
) -> None:
    """Callgrind's count per request for the bare handler and for ingest, one after the other."""
    port = free_port()
    bare = await instructions(
        "baseline",
        [sys.executable, "-m", "bench.baseline", str(port)],
        env=dict(os.environ),
        base=f"http://127.0.0.1:{port}",
        token="-",  # noqa: S106 (the bare handler asks for none)
        args=args,
    )
    # Under callgrind ingest runs ~50 times slower: give acknowledgements time to come back.
    env = {**env, **settings.replace(ingest_ack_deadline_ms=60_000).to_env()}
    ours = await instructions(
        "ingest",
        [sys.executable, "-m", "ingest"],
        env=env,
        base=f"http://127.0.0.1:{settings.ingest_port}",
        token=token,
        args=args,
    )
    print(
        f"instructions per single-record request ({args.requests:,} requests, "
        f"{args.connections} connections, callgrind): bare aiohttp handler {bare / 1000:,.1f}k, "
        f"ingest {ours / 1000:,.1f}k ({ours / bare:.2f} times the bare handler)",
        flush=True,
    )


async def baseline(args: argparse.Namespace) -> None:
    """The same single-record closed loop against a bare aiohttp handler, so the figures below
    can be read against what this (shared, noisy) machine delivers at the moment."""
    port = free_port()
    proc = processes.spawn([sys.executable, "-m", "bench.baseline", str(port)])
    try:
        await processes.wait_ready(f"http://127.0.0.1:{port}", proc, "baseline")
        url = f"http://127.0.0.1:{port}/v1/telemetry"
        driver = wrk_loop if args.wrk else closed_loop
        result = await measured(
            {"server": proc.pid}, driver(url, "-", 1, args.connections, min(args.seconds, 5))
        )
        result.label = "baseline: bare aiohttp handler"
        print(result.line(), flush=True)
    finally:
        processes.stop(proc)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--batch", type=int, action="append", help="records per request (repeat)")
    p.add_argument(
        "--wrk", action="store_true", help="drive the closed loop with wrk (apt-get install wrk)"
    )
    p.add_argument("--profile", type=Path, help="record a py-spy profile of ingest to this file")
    p.add_argument(
        "--instructions",
        action="store_true",
        help="instead: count instructions per single-record request under callgrind (valgrind)",
    )
    p.add_argument("--requests", type=int, default=2000, help="counted with --instructions")
    args = p.parse_args()
    args.batch = args.batch or [1, 100]
    return args


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(parse()))
