"""Per-fleet rate limiting: a token bucket of records per second for each fleet.

The bucket lives in this process, so with N ingest replicas a fleet may send up to N times the
limit in total; the limit protects each replica (and the broker) from one noisy fleet.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``take(fleet, n)`` spends ``n`` records; 0 means go, otherwise the seconds to wait."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, fleet: str, n: int) -> float:
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        bucket = self._buckets.get(fleet)
        if bucket is None:
            bucket = self._buckets[fleet] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens >= n:
            bucket.tokens -= n
            return 0.0
        return (n - bucket.tokens) / self.rate

    @staticmethod
    def retry_after(wait_s: float) -> int:
        """Whole seconds for the ``Retry-After`` header (at least 1)."""
        return max(1, math.ceil(wait_s))
