"""``python -m bench.streams``: stream worker throughput and latency.

The broker and the store are the ones the settings select: the embedded broker and SQLite by
default; an external Kafka with ``DRONETRACK_KAFKA_BOOTSTRAP_SERVERS=host:port``, Cassandra with
``DRONETRACK_STORE=cassandra`` and ``DRONETRACK_CASSANDRA_CONTACT_POINTS`` (+ _LOCAL_DC, ...).
Each run gets a fresh store: a new SQLite file, or a keyspace ``dronetrack_bench_<random>``
(created with the settings' replication, migrated, dropped afterwards). On an external Kafka the
topics are created if missing and never deleted: each run's consumer groups are new and start
at the end of ``drone.telemetry.v1``, so a run reads only the records it produced.

1. Throughput: fill ``drone.telemetry.v1`` with a simulated fleet's records, start N workers
   (one, then two, each run on a fresh broker and store), and time them through it: events/s
   from the worker's own counters, between 10% and 90% of the records (start-up excluded), and
   the workers' CPU per event. Then, for comparison, a Faust agent that only counts the same
   records (bench/faust_baseline.py): what the hot path would cost through Faust alone.
2. Latency: one worker, records produced at half the one-worker peak for a while, each stamped
   ``received_at`` when sent; p50/p99 of received-to-stored from the worker's histogram.
Alerts and minute statistics are on (the simulated batteries drain, so alerts do fire). This
machine is shared and small: compare figures within one run; they vary run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
from aiokafka.structs import OffsetAndMetadata, TopicPartition

from dronetrack import kafka, processes, record, topics
from dronetrack.broker import EmbeddedBroker, free_port
from dronetrack.settings import EMBEDDED, Settings
from dronetrack.simulator import make_fleet

FLEET = "bench"


def fleet_records(drones: int, n: int, stamp: bool) -> Iterator[tuple[bytes, bytes]]:
    """``n`` records of a ``drones``-strong fleet, 1 s of flight apart per drone."""
    fleet = make_fleet(drones, prefix="bench")
    t = int(time.time() * 1000)
    i = 0
    while True:
        for d in fleet:
            d.step(1.0)
        t += 1000
        for d in fleet:
            if i == n:
                return
            now = int(time.time() * 1000)
            # Live (stamped) records carry the current time as event time too.
            r = record.to_topic(d.report(now if stamp else t), FLEET, now if stamp else t)
            yield d.drone_id.encode(), record.encode(r)
            i += 1


async def fill(settings: Settings, drones: int, n: int) -> float:
    producer = kafka.producer(settings, linger_ms=50, max_batch_size=512 * 1024)
    await producer.start()
    start = time.perf_counter()
    try:
        pending = []
        for key, value in fleet_records(drones, n, stamp=False):
            pending.append(await producer.send(topics.TELEMETRY, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return n / (time.perf_counter() - start)


async def paced(settings: Settings, drones: int, rate: float, seconds: float) -> int:
    """Produce at ``rate`` records/s for ``seconds`` (in 10 ms ticks), stamping received_at."""
    producer = kafka.producer(settings, linger_ms=1)
    await producer.start()
    records = fleet_records(drones, int(rate * seconds), stamp=True)
    sent = 0
    start = time.perf_counter()
    try:
        for key, value in records:
            await producer.send(topics.TELEMETRY, value, key=key)
            sent += 1
            due = start + sent / rate
            if (ahead := due - time.perf_counter()) > 0.01:
                await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
    return sent


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (what it cost, whatever else the machine ran)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Worker:
    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = free_port()
        env = {**os.environ, **settings.replace(streams_web_port=self.port).to_env()}
        with log.open("ab") as out:
            self.proc = processes.spawn([sys.executable, "-m", "streams"], env=env, output=out)

    async def metrics(self, http: aiohttp.ClientSession) -> str:
        try:
            async with http.get(f"http://127.0.0.1:{self.port}/metrics") as r:
                return await r.text()
        except aiohttp.ClientError:
            return ""


STORED = ("streams_events_total", '{outcome="stored"}')


async def stored_at_least(http: aiohttp.ClientSession, worker: Worker, n: float) -> None:
    while counter(await worker.metrics(http), *STORED) < n:  # noqa: ASYNC110 - polling a process
        await asyncio.sleep(0.1)


def counter(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{name}{re.escape(labels)} ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def quantile(text: str, name: str, q: float) -> float:
    """Estimate a quantile from a Prometheus histogram (linear within a bucket)."""
    buckets = [
        (math.inf if le == "+Inf" else float(le), float(v))
        for le, v in re.findall(rf'^{name}_bucket{{le="([^"]+)"}} ([0-9.e+]+)$', text, re.M)
    ]
    total = buckets[-1][1] if buckets else 0
    if not total:
        return math.nan
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= q * total:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (q * total - prev_n) / max(n - prev_n, 1)
        prev_le, prev_n = le, n
    return math.nan


async def start_at_end(settings: Settings, group: str) -> None:
    """Commit ``group``'s offsets at the current end of the telemetry topic, so that a worker
    of that group reads only what is produced from now on (an external topic keeps old runs)."""
    await kafka.ensure_topics(settings)
    consumer = kafka.consumer(settings, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # metadata
        parts = [
            TopicPartition(topics.TELEMETRY, p)
            for p in sorted(consumer.partitions_for_topic(topics.TELEMETRY) or ())
        ]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        ends = {tp: OffsetAndMetadata(await consumer.position(tp), "") for tp in parts}
        await consumer.commit(ends)
    finally:
        await consumer.stop()


def cassandra_keyspace(settings: Settings) -> Settings:
    """A fresh, migrated keyspace for one run (the contract suite does the same)."""
    from dronetrack.store import cassandra_schema

    settings = settings.replace(cassandra_keyspace=f"dronetrack_bench_{secrets.token_hex(4)}")
    cassandra_schema.migrate(settings)
    return settings


def drop_keyspace(settings: Settings) -> None:
    from dronetrack.store.cassandra_cluster import build_cluster, connect

    cluster = build_cluster(settings)
    try:
        connect(cluster, settings, None).execute(
            f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=120
        )
    finally:
        cluster.shutdown()


@contextmanager
def broker_and_settings(base: Path, name: str) -> Iterator[Settings]:
    """Settings for one run: the embedded broker started for it, or the external one, and a
    fresh store."""
    d = base / name
    settings = Settings.from_env().replace(
        sqlite_path=d / "store.sqlite3",
        streams_data_dir=d / "streams",
        streams_worker_id=f"bench-{name}-{secrets.token_hex(3)}",
        log_dir=d,
    )
    broker = None
    if settings.kafka_bootstrap_servers == EMBEDDED:
        broker = EmbeddedBroker(settings, log_path=d / "broker.log")
        asyncio.run(broker.start())
        settings = broker.settings
    else:
        asyncio.run(start_at_end(settings, settings.streams_worker_id))
    if settings.store == "cassandra":
        settings = cassandra_keyspace(settings)
    try:
        yield settings
    finally:
        if broker is not None:
            asyncio.run(broker.stop())
        if settings.store == "cassandra":
            drop_keyspace(settings)


async def throughput(settings: Settings, workers: int, n: int, drones: int, log: Path) -> float:
    fill_rate = await fill(settings, drones, n)
    print(f"  filled {n:,} records ({fill_rate:,.0f}/s)", flush=True)
    started = [Worker(settings, log.with_suffix(f".{i}.log")) for i in range(workers)]
    marks: dict[float, float] = {}
    cpu: dict[float, float] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        deadline = time.monotonic() + 600
        while len(marks) < 2 and time.monotonic() < deadline:
            texts = await asyncio.gather(*(w.metrics(http) for w in started))
            done = sum(counter(t, "streams_events_total", '{outcome="stored"}') for t in texts)
            now = time.perf_counter()
            for frac in (0.1, 0.9):
                if frac not in marks and done >= frac * n:
                    marks[frac] = now
                    cpu[frac] = sum(cpu_seconds(w.proc.pid) for w in started)
            # Rendering /metrics costs the worker CPU: poll often enough to place the 10 % and
            # 90 % marks well (a few hundred ms in runs of tens of seconds), and no more.
            await asyncio.sleep(0.25)
    for w in started:
        processes.stop(w.proc, 30)
    if len(marks) < 2:
        raise SystemExit("workers did not get through the records in time; see " + str(log))
    per_event_us = (cpu[0.9] - cpu[0.1]) / (0.8 * n) * 1e6
    print(f"  worker CPU per event: {per_event_us:.0f} µs", flush=True)
    return 0.8 * n / (marks[0.9] - marks[0.1])


async def baseline(settings: Settings, n: int, drones: int, log: Path) -> str:
    """Faust alone: a worker whose agent only counts the same records."""
    await fill(settings, drones, n)
    done = log.with_suffix(".count")
    env = {**os.environ, **settings.to_env(), "BENCH_DONE_FILE": str(done)}
    with log.open("ab") as out:
        proc = processes.spawn([sys.executable, "-m", "bench.faust_baseline"], env=env, output=out)
    marks: dict[float, tuple[float, float]] = {}
    deadline = time.monotonic() + 600
    while len(marks) < 2 and time.monotonic() < deadline:
        seen = int(done.read_text() or 0) if done.exists() else 0
        for frac in (0.1, 0.9):
            if frac not in marks and seen >= frac * n:
                marks[frac] = (time.perf_counter(), cpu_seconds(proc.pid))
        await asyncio.sleep(0.05)
    processes.stop(proc, 30)
    if len(marks) < 2:
        raise SystemExit("the baseline worker did not get through the records; see " + str(log))
    (t1, c1), (t9, c9) = marks[0.1], marks[0.9]
    return (
        f"{0.8 * n / (t9 - t1):,.0f} events/s, CPU per event {(c9 - c1) / (0.8 * n) * 1e6:.0f} µs"
    )


async def latency(settings: Settings, rate: float, seconds: float, drones: int, log: Path) -> str:
    worker = Worker(settings, log)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        # Warm up until the worker stores records, then measure a fresh run on top.
        await paced(settings, drones, 50, 1)
        await stored_at_least(http, worker, 1)
        before = await worker.metrics(http)
        sent = await paced(settings, drones, rate, seconds)
        await stored_at_least(http, worker, counter(before, *STORED) + sent)
        text = await worker.metrics(http)
    processes.stop(worker.proc, 30)
    return ", ".join(
        f"{name} p50 {quantile(text, metric, 0.5) * 1000:.0f} ms "
        f"p99 {quantile(text, metric, 0.99) * 1000:.0f} ms"
        for name, metric in (
            ("received-to-stored", "streams_freshness_seconds"),
            ("event-to-stored", "streams_processing_latency_seconds"),
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.streams", description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=300_000)
    p.add_argument("--drones", type=int, default=1_000)
    p.add_argument("--latency-seconds", type=float, default=20.0)
    p.add_argument("--keep", action="store_true", help="keep the run directory")
    p.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts to run (1 2)"
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the Faust-only baseline")
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-streams-"))
    where = Settings.from_env()
    store = (
        where.store
        if where.store != "cassandra"
        else f"cassandra at {where.cassandra_contact_points}"
    )
    print(
        f"stream worker bench: {args.records:,} records, {args.drones} drones; broker"
        f" {where.kafka_bootstrap_servers}, store {store}; logs in {base}"
    )
    peaks = {}
    for workers in args.workers:
        with broker_and_settings(base, f"w{workers}") as settings:
            peaks[workers] = asyncio.run(
                throughput(settings, workers, args.records, args.drones, base / f"w{workers}.log")
            )
        print(f"{workers} worker(s): {peaks[workers]:,.0f} events/s", flush=True)
    if not args.no_baseline:
        with broker_and_settings(base, "baseline") as settings:
            bare = asyncio.run(baseline(settings, args.records, args.drones, base / "baseline.log"))
        print(f"a Faust agent that only counts (take_events, same batching): {bare}", flush=True)
    rate = peaks[min(peaks)] / min(peaks) / 2
    with broker_and_settings(base, "latency") as settings:
        figures = asyncio.run(
            latency(settings, rate, args.latency_seconds, args.drones, base / "latency.log")
        )
    print(f"latency at {rate:,.0f} events/s (half the 1-worker peak): {figures}")
    if min(peaks) != 1:
        print("(with no 1-worker run, the rate is half the per-worker peak of the smallest run)")
    if not args.keep:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
