"""Witness state stores: SQLite (durable, shared by processes) and in-memory (tests, benches).

:class:`SqliteWitnessState` keeps one row per log origin. ``compare_and_set`` runs inside
``BEGIN IMMEDIATE``, which takes SQLite's write lock *before* the row is read, so two
processes sharing the file serialise: the second sees the first's row and its comparison
fails, and the witness never cosigns two conflicting trees. WAL journaling lets readers
proceed meanwhile; ``synchronous=FULL`` makes a committed head survive a power cut, because
the witness hands out a cosignature right after the commit.

Threading: each instance owns one connection guarded by ``_lock``; every method takes it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from .cosign_rule import TreeHead

__all__ = ["MemoryWitnessState", "SqliteWitnessState"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS witness_head (
    origin      TEXT PRIMARY KEY,
    size        INTEGER NOT NULL CHECK (size >= 0),
    root        BLOB NOT NULL CHECK (length(root) = 32),
    updated_utc INTEGER NOT NULL
)
"""


class SqliteWitnessState:
    """Last cosigned head per origin in a SQLite file (see the module docstring)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def get(self, origin: str) -> TreeHead | None:
        """The last cosigned ``(size, root)`` for ``origin``."""
        with self._lock:
            row = self._db.execute(
                "SELECT size, root FROM witness_head WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def compare_and_set(self, origin: str, expected: TreeHead | None, new: TreeHead) -> bool:
        """Atomically replace ``expected`` by ``new``; False if the row changed meanwhile."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT size, root FROM witness_head WHERE origin = ?", (origin,)).fetchone()
                current = None if row is None else (int(row[0]), bytes(row[1]))
                if current != expected:
                    self._db.execute("ROLLBACK")
                    return False
                self._db.execute(
                    "INSERT INTO witness_head (origin, size, root, updated_utc) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(origin) DO UPDATE SET size = excluded.size, root = excluded.root, "
                    "updated_utc = excluded.updated_utc",
                    (origin, new[0], new[1], int(time.time())))
                self._db.execute("COMMIT")
                return True
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise


class MemoryWitnessState:
    """The same contract in a dict (nothing survives the process). Guarded by ``_lock``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heads: dict[str, TreeHead] = {}

    def get(self, origin: str) -> TreeHead | None:
        """The last cosigned head for ``origin``."""
        with self._lock:
            return self._heads.get(origin)

    def compare_and_set(self, origin: str, expected: TreeHead | None, new: TreeHead) -> bool:
        """Replace ``expected`` by ``new`` unless another caller changed it first."""
        with self._lock:
            if self._heads.get(origin) != expected:
                return False
            self._heads[origin] = new
            return True
