"""Failed logins, counted per user name and per client address in the store, so that guessing
passwords stops being worth it on every replica at once, and no cache eviction or Redis restart
can wipe the count.

Over either limit (failures within the last window), a login is refused with 429 before its
password is checked, until enough of those failures leave the window. A name's count is cleared
by a successful login. The per-address limit is higher, for offices behind one NAT; the per-name
one is what stops a guesser spreading over many addresses, at the price that such a guesser can
hold one name locked out for a window. The store costs a few reads per login and a write per
failure; at most two password checks run at once per replica, which bounds that rate too.
"""

from __future__ import annotations

import hashlib
import logging

from prometheus_client import CollectorRegistry, Counter

from dashboard.reads import now_ms
from dronetrack.store import Store

log = logging.getLogger(__name__)


def _scope(kind: str, value: str) -> str:
    # Hashed: both are the client's strings, of any length.
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


class LoginThrottle:
    store: Store  # set once the store is open, before the first request

    def __init__(
        self, registry: CollectorRegistry, *, per_name: int, per_address: int, window_s: int
    ) -> None:
        self.limits = {"name": per_name, "address": per_address}
        self.window_s = window_s
        self.logins = Counter(
            "dashboard_logins_total",
            "Login attempts by outcome: ok, refused (wrong name or password), throttled.",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("ok", "refused", "throttled"):  # alerted on: exported at 0 from the start
            self.logins.labels(outcome)

    async def _failures(self, kind: str, value: str, now: int) -> list[int]:
        """The newest failures (up to the limit) in the window that ends now."""
        since = now - self.window_s * 1000
        return await self.store.login_failures(
            _scope(kind, value), since_ms=since, limit=self.limits[kind]
        )

    async def retry_after(self, name: str, address: str) -> int:
        """Seconds until a login for ``name`` from ``address`` may be tried again; 0: now."""
        now = now_ms()
        wait_ms = 0
        for kind, value in self._counted(name, address):
            failures = await self._failures(kind, value, now)
            if len(failures) >= self.limits[kind]:
                # Below the limit again once the oldest of the newest `limit` leaves the window.
                wait_ms = max(wait_ms, failures[-1] + self.window_s * 1000 - now)
        if wait_ms:
            self.logins.labels("throttled").inc()
        return -(-wait_ms // 1000)  # whole seconds, rounded up

    async def failed(self, name: str, address: str) -> None:
        self.logins.labels("refused").inc()
        now = now_ms()
        for kind, value in self._counted(name, address):
            await self.store.note_login_failure(_scope(kind, value), now, window_s=self.window_s)
            failures = await self._failures(kind, value, now)
            # Said once per window: past the limit, logins are refused before they can fail.
            if len(failures) == self.limits[kind] and failures[0] == now:
                log.warning(
                    "login throttled",
                    extra={"by": kind, "user": name, "address": address, "failures": len(failures)},
                )

    def _counted(self, name: str, address: str) -> list[tuple[str, str]]:
        """The counters in force (a limit of 0 turns its counter off)."""
        both = (("name", name), ("address", address))
        return [(kind, value) for kind, value in both if self.limits[kind] > 0]

    async def succeeded(self, name: str) -> None:
        self.logins.labels("ok").inc()
        if self.limits["name"] > 0:
            await self.store.clear_login_failures(
                _scope("name", name), now_ms(), window_s=self.window_s
            )
