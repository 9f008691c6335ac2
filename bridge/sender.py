"""From the on-disk queue to ingest, oldest first: a batch leaves the queue only once ingest
answered 202 (Kafka has it), or refused it for good (a 4xx other than 429, logged with the
problem's detail). An unreachable ingest, a 429 or a 5xx keeps the batch and waits, honouring
``Retry-After``. A batch re-sent after a crash between the 202 and the removal is absorbed
downstream: a record's identity is its fleet, drone id and event time.

Several batches are in flight at once (``LANES``), each holding the records of its own drones,
one batch after another within a lane: a drone's records still arrive in their order. One
batch at a time drained a backlog at ~6,000 records/s: the wait for the broker's
acknowledgement of each batch, not the work, was the limit (bench/bridge.py)."""

from __future__ import annotations

import asyncio
import gzip
import logging
import random
import time

import aiohttp

from bridge.metrics import BridgeMetrics
from bridge.spool import Row, Spool

log = logging.getLogger(__name__)

COMPRESS_ABOVE_BYTES = 1_024
LANES = 16


def encode_batch(bodies: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """A JSON array of records, gzip-compressed when that is worth it (level 1: JSON records
    shrink ~5x at a fraction of the CPU of higher levels)."""
    body = b"[" + b",".join(bodies) + b"]"
    if len(body) < COMPRESS_ABOVE_BYTES:
        return body, {}
    return gzip.compress(body, compresslevel=1), {"Content-Encoding": "gzip"}


class Sender:
    def __init__(
        self,
        *,
        spool: Spool,
        http: aiohttp.ClientSession,
        url: str,
        token: str,
        metrics: BridgeMetrics,
        batch_records: int,
        backoff_max_s: float,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.spool = spool
        self.http = http
        self.url = url.rstrip("/") + "/v1/telemetry"
        self.headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            **(headers or {}),
        }
        self.metrics = metrics
        self.batch_records = batch_records
        self.backoff_max_s = backoff_max_s
        self.queued = asyncio.Event()  # set when records are pushed
        self.failing_since: float | None = None  # monotonic time of the first failure in a row
        self.sent = self.refused = 0

    async def run(self) -> None:
        """Send until cancelled, waking when records are queued."""
        while True:
            self.queued.clear()
            await self.drain()
            await self.queued.wait()

    async def drain(self) -> None:
        """Send until the queue is empty, waiting out an unreachable or busy ingest."""
        delay = 0.0
        while rows := self.spool.peek(self.batch_records * LANES):
            lanes: dict[int, list[Row]] = {}
            for row in rows:
                lanes.setdefault(row[1] % LANES, []).append(row)
            outcomes = await asyncio.gather(*(self._lane(lane) for lane in lanes.values()))
            done = [i for ids, _ in outcomes for i in ids]
            self.spool.remove(done)
            self.metrics.queue.set(self.spool.count)
            waits = [wait for _, wait in outcomes if wait is not None]
            if not waits:
                delay = 0.0
                continue
            delay = min(self.backoff_max_s, max(*waits, delay * 2 or 0.1))
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    async def _lane(self, rows: list[Row]) -> tuple[list[int], float | None]:
        """Send one lane's rows batch by batch, stopping at the first batch that must wait;
        returns the ids done with and the wait asked for (None if all went)."""
        done: list[int] = []
        for start in range(0, len(rows), self.batch_records):
            batch = rows[start : start + self.batch_records]
            wait = await self.send([body for _, _, body in batch])
            if wait is not None:
                return done, wait
            done.extend(i for i, _, _ in batch)
        return done, None

    async def send(self, bodies: list[bytes]) -> float | None:
        """Post one batch; None when it is done with (sent, or refused for good), else the
        seconds ingest asked to wait (0 when it did not say or did not answer)."""
        data, extra = encode_batch(bodies)
        try:
            async with self.http.post(
                self.url, data=data, headers={**self.headers, **extra}
            ) as response:
                status = response.status
                detail = "" if status == 202 else (await response.text())[:2_000]
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self.metrics.requests.labels("error").inc()
            log.warning("ingest unreachable; records wait in the queue", extra={"error": repr(exc)})
            return self._failed(0.0)
        self.metrics.requests.labels(str(status)).inc()
        if status == 202:
            self.failing_since = None
            self.sent += len(bodies)
            self.metrics.records.labels("sent").inc(len(bodies))
            return None
        if 400 <= status < 500 and status != 429:
            self.failing_since = None
            self.refused += len(bodies)
            self.metrics.records.labels("refused").inc(len(bodies))
            log.error(
                "ingest refused a batch; its records are dropped",
                extra={"status": status, "records": len(bodies), "problem": detail},
            )
            return None
        log.warning("ingest busy or failing", extra={"status": status, "problem": detail})
        return self._failed(_retry_after(retry_after))

    def _failed(self, wait_s: float) -> float:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        return wait_s


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0
