"""Store throughput and read latency: `python -m bench.store [--records N]`.

Uses the store the settings select (DRONETRACK_STORE; SQLite in a temporary directory by
default, or, with DRONETRACK_STORE=cassandra and DRONETRACK_CASSANDRA_CONTACT_POINTS, a fresh
keyspace dronetrack_bench_<random> created with the settings' replication and dropped after).
Prints figures; the machine is shared and noisy, so compare runs made one after the other.

``--standin`` runs the Cassandra adapter over the in-process stand-in (tests/cassandra_standin.py)
instead, with no cluster: the requests the adapter sends per record, and the CPU of the thread
that builds and sends them (the adapter and the driver's statement binding; not the driver's
network path, which the stand-in replaces).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.streams import cassandra_keyspace, drop_keyspace
from dronetrack.passwords import hash_password, verify_password
from dronetrack.record import Telemetry
from dronetrack.settings import Settings
from dronetrack.store import Store, open_store

T0 = 1_795_000_000_000
REQUESTS = [0]  # requests sent to the stand-in (--standin)


def use_standin() -> None:
    """Route the Cassandra adapter to the in-process stand-in, counting its requests."""
    import pytest

    from tests.cassandra_standin import StandinSession, install

    install(pytest.MonkeyPatch())
    execute_async = StandinSession.execute_async

    def counted(self: StandinSession, statement: object) -> object:
        REQUESTS[0] += 1
        return execute_async(self, statement)

    StandinSession.execute_async = counted  # type: ignore[method-assign,assignment]


def records(n: int, drones: int) -> list[Telemetry]:
    """``n`` records from ``drones`` drones reporting at 10 Hz."""
    return [
        Telemetry(
            drone_id=f"d{i % drones:04d}",
            ts=T0 + (i // drones) * 100,
            lat=47.0 + i * 1e-6,
            lon=8.0,
            alt_m=100.0,
            speed_mps=12.0,
            heading_deg=90.0,
            battery_pct=80.0,
            seq=i // drones,
            fleet="bench",
            received_at=T0 + (i // drones) * 100 + 3,
        )
        for i in range(n)
    ]


async def timed(label: str, fn: Callable[[], Awaitable[object]], runs: int) -> None:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
    print(f"{label:<38} p50 {statistics.median(samples):7.2f} ms   p99 {p99:7.2f} ms")


async def bench(store: Store, n: int, drones: int, batch: int) -> None:
    data = records(n, drones)
    for label in ("write_telemetry (new)", "write_telemetry (replay)"):
        start, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
        sent = REQUESTS[0]
        for i in range(0, n, batch):
            await store.write_telemetry(data[i : i + batch])
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        thread = time.thread_time() - thread
        print(
            f"{label:<38} {n / elapsed:10,.0f} records/s ({batch}-record batches),"
            f" CPU per record {cpu / n * 1e6:.0f} µs (process), {thread / n * 1e6:.0f} µs"
            " (event loop thread)"
            + (f", {(REQUESTS[0] - sent) / n:.3f} requests per record" if REQUESTS[0] else "")
        )
    await timed(f"latest() of {drones} drones", lambda: store.latest("bench"), 50)
    await timed("track(limit=1000)", lambda: store.track("bench", "d0001", limit=1_000), 50)
    await timed("track(limit=100)", lambda: store.track("bench", "d0001", limit=100), 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--drones", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--standin", action="store_true", help="Cassandra adapter, no cluster")
    args = parser.parse_args()
    settings = Settings.from_env()
    if args.standin:
        from dronetrack.store import cassandra_schema

        use_standin()
        settings = Settings(store="cassandra", cassandra_contact_points="standin")
        cassandra_schema.migrate(settings)
    with tempfile.TemporaryDirectory() as tmp:
        if settings.store == "sqlite":
            settings = settings.replace(sqlite_path=Path(tmp) / "bench.sqlite3")
        elif settings.store == "cassandra" and not args.standin:
            settings = cassandra_keyspace(settings)
        store = open_store(settings)
        print(f"store: {settings.store}; {args.records:,} records from {args.drones} drones")

        async def run() -> None:
            await store.open()
            try:
                await bench(store, args.records, args.drones, args.batch)
            finally:
                await store.close()

        try:
            asyncio.run(run())
        finally:
            if settings.store == "cassandra" and not args.standin:
                drop_keyspace(settings)
    start = time.perf_counter()
    stored = hash_password("correct horse battery")
    hashed = time.perf_counter() - start
    start = time.perf_counter()
    verify_password(stored, "correct horse battery")
    verified = time.perf_counter() - start
    print(f"argon2id hash {hashed * 1000:.0f} ms, verify {verified * 1000:.0f} ms")


if __name__ == "__main__":
    main()
