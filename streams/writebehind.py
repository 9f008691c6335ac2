"""Write-behind with a commit guard: overlap a batch's writes with taking the next batch.

Faust acknowledges a taken batch when the agent's body returns, and commits acknowledged offsets
every second. Waiting in the body for the writes leaves Faust idle for their whole duration; not
waiting would let a commit cover a batch whose writes are still in flight. So: the body starts the
writes of batch n and returns, at most one batch's writes are in flight (batch n+1 waits for them
before starting its own, which also keeps every batch's writes in order), and every commit first
waits for the writes in flight, holding the lock so no new batch is acknowledged meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any


class WriteBehind:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self._inflight: asyncio.Task[None] | None = None

    async def drain(self) -> None:
        """Wait for the writes in flight (they retry until they succeed)."""
        task = self._inflight
        if task is not None:
            await asyncio.shield(task)
            self._inflight = None

    async def submit(self, write: Coroutine[Any, Any, None]) -> None:
        """Start ``write`` once the previous one finished. Call with ``lock`` held."""
        await self.drain()
        self._inflight = asyncio.ensure_future(write)

    @asynccontextmanager
    async def quiesced(self) -> AsyncIterator[None]:
        """Nothing in flight and nothing new starting: for commits and revocations."""
        async with self.lock:
            await self.drain()
            yield
