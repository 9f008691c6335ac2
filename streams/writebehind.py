"""Write-behind: overlap a batch's writes with processing the next batch.

At most one batch's writes are in flight: batch n+1 is processed while batch n is written, and
waits for those writes before starting its own, which also keeps every batch's writes (and the
offset commit that follows them, streams.feed) in order. Revocation and shutdown wait for the
writes in flight while holding the lock, so no new batch starts meanwhile.
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
        try:
            await self.drain()
        except BaseException:
            write.close()  # cancelled while waiting (shutdown): never started, never will be
            raise
        self._inflight = asyncio.ensure_future(write)

    @asynccontextmanager
    async def quiesced(self) -> AsyncIterator[None]:
        """Nothing in flight and nothing new starting: for commits and revocations."""
        async with self.lock:
            await self.drain()
            yield
