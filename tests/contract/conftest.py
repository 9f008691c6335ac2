"""The store contract runs against every adapter the machine can reach."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dronetrack.store import Store
from dronetrack.store.sqlite import SqliteStore


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    adapter: Store = SqliteStore(tmp_path / "contract.sqlite3")
    await adapter.open()
    try:
        yield adapter
    finally:
        await adapter.close()
