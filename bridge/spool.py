"""The bridge's on-disk queue: every record goes through it, oldest first, so that a record
made while ingest is unreachable, or while the bridge restarts, is still sent, once its turn
comes, with its original event time.

SQLite in WAL mode: a row is on disk once ``push`` returns, and survives the process being
killed (``synchronous=NORMAL`` can lose the last transactions on a power cut, not on a crash).
Bounded: past ``max_records`` the oldest rows are dropped, and ``push`` says how many.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path


class Spool:
    def __init__(self, path: Path, max_records: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY AUTOINCREMENT, body BLOB)"
        )
        self.max_records = max_records
        self.count: int = self._db.execute("SELECT count(*) FROM spool").fetchone()[0]

    def push(self, bodies: Sequence[bytes]) -> int:
        """Append records (JSON bodies) in one transaction; returns how many of the oldest were
        dropped to stay within the bound."""
        if not bodies:
            return 0
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO spool (body) VALUES (?)", ((b,) for b in bodies))
            self.count += len(bodies)
            over = self.count - self.max_records
            if over <= 0:
                return 0
            dropped: int = self._db.execute(
                "DELETE FROM spool WHERE id IN (SELECT id FROM spool ORDER BY id LIMIT ?)",
                (over,),
            ).rowcount
            self.count -= dropped
        return dropped

    def peek(self, n: int) -> tuple[int, list[bytes]]:
        """The ``n`` oldest records and the id of the last of them (0 if none)."""
        rows = self._db.execute("SELECT id, body FROM spool ORDER BY id LIMIT ?", (n,)).fetchall()
        return (rows[-1][0] if rows else 0), [r[1] for r in rows]

    def remove_through(self, last_id: int) -> None:
        """Forget the records up to ``last_id``, once ingest has them."""
        self.count -= self._db.execute("DELETE FROM spool WHERE id <= ?", (last_id,)).rowcount

    def close(self) -> None:
        self._db.close()
