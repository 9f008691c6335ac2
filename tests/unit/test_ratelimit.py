"""The per-fleet token bucket, on a clock the test controls."""

from __future__ import annotations

from ingest.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_passes_then_the_rate_applies() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=100.0, burst=200, clock=clock)
    assert limiter.take("a", 200) == 0.0
    assert limiter.take("a", 50) == 0.5  # 50 records at 100/s
    clock.now = 0.5
    assert limiter.take("a", 50) == 0.0


def test_fleets_have_their_own_buckets() -> None:
    limiter = RateLimiter(rate=10.0, burst=10, clock=Clock())
    assert limiter.take("a", 10) == 0.0
    assert limiter.take("a", 1) > 0
    assert limiter.take("b", 10) == 0.0


def test_a_refused_request_spends_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10.0, burst=10, clock=clock)
    limiter.take("a", 10)
    assert limiter.take("a", 5) == 0.5
    clock.now = 0.5
    assert limiter.take("a", 5) == 0.0


def test_zero_rate_means_no_limit_and_retry_after_is_whole_seconds() -> None:
    assert RateLimiter(rate=0.0, burst=0).take("a", 10**9) == 0.0
    assert [RateLimiter.retry_after(s) for s in (0.01, 1.0, 1.2)] == [1, 1, 2]
