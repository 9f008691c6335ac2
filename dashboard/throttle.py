"""Failed logins, counted per user name and per client address in the shared cache, so that
guessing passwords stops being worth it on every replica at once.

Over either limit, a login is refused with 429 before its password is checked, until the
window that counted the failures ends. A name's count is cleared by a successful login. The
per-address limit is higher, for offices behind one NAT; the per-name one is what stops a
guesser spreading over many addresses, at the price that such a guesser can hold one name
locked out for a window. With the cache failing, nothing is counted and logins go on: the
concurrency cap on password checks still bounds their rate.
"""

from __future__ import annotations

import hashlib
import logging

from prometheus_client import CollectorRegistry, Counter

from dashboard.cache import Cache

log = logging.getLogger(__name__)


def _key(kind: str, value: str) -> str:
    # Hashed: both are the client's strings, of any length.
    return f"login-failures:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


class LoginThrottle:
    cache: Cache  # set once the cache is open, before the first request

    def __init__(
        self, registry: CollectorRegistry, *, per_name: int, per_address: int, window_s: int
    ) -> None:
        self.limits = {"name": per_name, "address": per_address}
        self.window_ms = window_s * 1000
        self.logins = Counter(
            "dashboard_logins_total",
            "Login attempts by outcome: ok, refused (wrong name or password), throttled.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("ok", "refused", "throttled"):  # alerted on: exported at 0 from the start
            self.logins.labels(outcome)

    async def retry_after(self, name: str, address: str) -> int:
        """Seconds until a login for ``name`` from ``address`` may be tried again; 0: now."""
        wait_ms = 0
        for kind, value in self._counted(name, address):
            count, left_ms = await self.cache.counted(_key(kind, value))
            if count >= self.limits[kind]:
                wait_ms = max(wait_ms, left_ms)
        if wait_ms:
            self.logins.labels("throttled").inc()
        return -(-wait_ms // 1000)  # whole seconds, rounded up

    async def failed(self, name: str, address: str) -> None:
        self.logins.labels("refused").inc()
        for kind, value in self._counted(name, address):
            count = await self.cache.count(_key(kind, value), self.window_ms)
            if count == self.limits[kind]:  # said once per window, however long it goes on
                log.warning(
                    "login throttled",
                    extra={"by": kind, "user": name, "address": address, "failures": count},
                )

    def _counted(self, name: str, address: str) -> list[tuple[str, str]]:
        """The counters in force (a limit of 0 turns its counter off)."""
        both = (("name", name), ("address", address))
        return [(kind, value) for kind, value in both if self.limits[kind] > 0]

    async def succeeded(self, name: str) -> None:
        self.logins.labels("ok").inc()
        await self.cache.delete(_key("name", name))
