"""The bridge's on-disk queue: every record goes through it, oldest first, so that a record
made while ingest is unreachable, or while the bridge restarts, is still sent, once its turn
comes, with its original event time.

SQLite in WAL mode: a row is on disk once ``push`` returns, and survives the process being
killed (``synchronous=NORMAL`` can lose the last transactions on a power cut, not on a crash).
Bounded: past ``max_records`` the oldest rows are dropped, and ``push`` says how many.

Each row carries its drone's lane key (a hash of the drone id), so that the sender can send
several batches at once while a drone's records still reach ingest in their order.
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Sequence
from pathlib import Path

Row = tuple[int, int, bytes]  # id, lane key, record JSON


def lane_key(drone_id: str) -> int:
    return zlib.crc32(drone_id.encode())


class Spool:
    def __init__(self, path: Path, max_records: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool "
            "(id INTEGER PRIMARY KEY AUTOINCREMENT, lane INTEGER NOT NULL, body BLOB NOT NULL)"
        )
        self.max_records = max_records
        self.count: int = self._db.execute("SELECT count(*) FROM spool").fetchone()[0]

    def push(self, records: Sequence[tuple[int, bytes]]) -> int:
        """Append (lane key, record JSON) pairs in one transaction; returns how many of the
        oldest records were dropped to stay within the bound."""
        if not records:
            return 0
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO spool (lane, body) VALUES (?, ?)", records)
            self.count += len(records)
            over = self.count - self.max_records
            if over <= 0:
                return 0
            dropped: int = self._db.execute(
                "DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)",
                (over,),
            ).rowcount
            self.count -= dropped
        return dropped

    def peek(self, n: int) -> list[Row]:
        """The ``n`` oldest records."""
        rows: list[Row] = self._db.execute(
            "SELECT id, lane, body FROM spool ORDER BY id LIMIT ?", (n,)
        ).fetchall()
        return rows

    def remove(self, ids: Sequence[int]) -> None:
        """Forget these records, once ingest has them."""
        with self._db:
            self._db.execute("BEGIN")
            self.count -= self._db.executemany(
                "DELETE FROM spool WHERE id = ?", ((i,) for i in ids)
            ).rowcount

    def close(self) -> None:
        self._db.close()
