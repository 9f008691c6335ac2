"""The store sink: the worker's one owner of the store connection."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import mode

from dronetrack.record import Telemetry
from dronetrack.store import Store

log = logging.getLogger(__name__)


class StoreSink(mode.Service):
    """Opens the store before the app starts consuming and closes it after the app stopped
    (the Faust worker starts its extra services before the app and stops them after)."""

    def __init__(self, store: Store, retries: int = 5, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.store = store
        self.retries = retries

    async def on_start(self) -> None:
        await self.store.open()

    async def on_stop(self) -> None:
        await self.store.close()

    async def write(self, records: Sequence[Telemetry]) -> None:
        """Write a batch, retrying with backoff: every write is idempotent, so a retry is safe.
        After the last retry the error propagates and the batch's offsets stay uncommitted."""
        delay = 0.05
        for attempt in range(self.retries + 1):
            try:
                await self.store.write_telemetry(records)
                return
            except Exception as exc:
                if attempt == self.retries:
                    raise
                log.warning(
                    "store write failed, retrying",
                    extra={"error": repr(exc), "attempt": attempt + 1},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
