"""Durable outbox: every manifest, checkpoint and event waits here until the broker acknowledges it.

The outbox is the only thing that makes MQTT delivery survive a power cut. paho keeps
unacknowledged messages in memory; a reboot loses them. Here a row is written and fsync'd
before ``enqueue`` returns, handed to the broker only while connected, and deleted only after
a PUBACK with a success reason code. Anything still present after a restart is sent again;
the back office dedupes by ``(device_id, outbox_epoch, seq)``.

Storage choices, and why:

* SQLite in WAL mode: readers (``pending``) never block the writer that enqueues a segment
  manifest while the link drains, and a torn write is rolled back on the next open.
* ``synchronous=FULL``: in WAL mode ``NORMAL`` only syncs the WAL at checkpoints, so the last
  committed transactions can vanish on power loss. ``FULL`` fsyncs the WAL on every commit,
  which is exactly the promise ``enqueue`` makes. (Deletes of delivered rows are the one
  exception, see :meth:`Outbox.mark_delivered`.)
* ``seq INTEGER PRIMARY KEY AUTOINCREMENT``: without AUTOINCREMENT SQLite reuses the highest
  rowid once the table empties, so a fresh message could carry the seq of one already
  delivered and be discarded by the back office's dedupe. AUTOINCREMENT never reuses a seq.
* ``epoch``: a random id created with the database. If the file is ever lost and recreated,
  seqs restart at 1; the epoch tells the back office it is a new sequence, not duplicates.

The same file also keeps the link's two other pieces of durable state, because they must
survive exactly the same events: the session counter carried in the status Last Will, and the
ids of recently seen remote commands (duplicate detection).

Locking: one SQLite connection, shared by all threads, serialised by ``self._lock``. Every
public method takes the lock for its whole duration; none calls back into user code.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hw.errors import SyncError

__all__ = ["Outbox", "OutboxMessage"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    qos     INTEGER NOT NULL CHECK (qos IN (0, 1, 2)),
    retain  INTEGER NOT NULL CHECK (retain IN (0, 1)),
    kind    TEXT    NOT NULL,
    created INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_command (
    id   TEXT PRIMARY KEY,
    seen INTEGER NOT NULL
);
"""

PayloadSource = bytes | Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One queued message, exactly as it will be handed to the broker."""

    seq: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: str
    created_ms: int


class Outbox:
    """A crash-safe FIFO of MQTT messages keyed by a never-reused sequence number."""

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise SyncError(f"outbox {self._path}: SQLite refused WAL mode (got {mode!r})")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._epoch = self._init_epoch()
            self._depth = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
        except sqlite3.Error as exc:
            raise SyncError(f"outbox {self._path}: cannot open: {exc}") from exc

    # --- properties ---------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def epoch(self) -> str:
        """Random id of this database; seqs are unique within one epoch."""
        return self._epoch

    # --- queue --------------------------------------------------------------------------------
    def enqueue(
        self,
        topic: str,
        payload: PayloadSource,
        *,
        qos: int = 1,
        retain: bool = False,
        kind: str,
    ) -> int:
        """Append a message and return its seq once it is on stable storage.

        ``payload`` may be a callable taking the new seq, so a message can embed its own
        sequence number and still be written in a single transaction (one fsync).
        """
        if qos not in (0, 1, 2):
            raise SyncError(f"outbox: qos must be 0, 1 or 2, not {qos!r}")
        if not topic or "+" in topic or "#" in topic:
            raise SyncError(f"outbox: not a publishable topic: {topic!r}")
        created = time.time_ns() // 1_000_000
        with self._lock, self._transaction():
            cur = self._db.execute(
                "INSERT INTO outbox (topic, payload, qos, retain, kind, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (topic, b"" if callable(payload) else payload, qos, int(retain), kind, created),
            )
            seq = cur.lastrowid
            if seq is None:  # pragma: no cover - sqlite3 always sets it after an INSERT
                raise SyncError("outbox: INSERT returned no rowid")
            if callable(payload):
                body = payload(seq)
                self._db.execute("UPDATE outbox SET payload = ? WHERE seq = ?", (body, seq))
            self._depth += 1
            return seq

    def pending(self, limit: int = 100, *, after: int = 0) -> list[OutboxMessage]:
        """Up to ``limit`` undelivered messages with ``seq > after``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload, qos, retain, kind, created FROM outbox"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [
            OutboxMessage(int(s), str(t), bytes(p), int(q), bool(r), str(k), int(c))
            for s, t, p, q, r, k, c in rows
        ]

    def mark_delivered(self, *seqs: int) -> int:
        """Delete acknowledged messages (one transaction for all); returns how many existed.

        Deletes are committed without their own fsync (``synchronous=NORMAL`` for this
        transaction only; WAL stays consistent either way): a delete lost to a power cut only
        re-sends a message the broker already has, which the back office dedupes. The next
        enqueue's fsync makes it durable anyway. This keeps draining a backlog off the SD card's
        fsync latency.
        """
        if not seqs:
            return 0
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._transaction():
                    removed = 0
                    for chunk in _chunks(seqs, 500):
                        marks = ",".join("?" * len(chunk))
                        cur = self._db.execute(f"DELETE FROM outbox WHERE seq IN ({marks})",
                                               chunk)
                        removed += max(cur.rowcount, 0)
                    self._depth -= removed
                    return removed
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def depth(self) -> int:
        """Number of messages still waiting for a broker acknowledgement."""
        with self._lock:
            return self._depth

    # --- link state ---------------------------------------------------------------------------
    def next_session(self) -> int:
        """Increment and return the persisted connection-session counter."""
        with self._lock, self._transaction():
            row = self._db.execute("SELECT value FROM meta WHERE name = 'session'").fetchone()
            value = int(row[0]) + 1 if row else 1
            self._db.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('session', ?)", (str(value),)
            )
            return value

    def remember_command(self, command_id: str, *, now: float, horizon_s: float) -> bool:
        """Record a command id; False if it was already seen within ``horizon_s`` seconds.

        Older ids are pruned: a command that old is rejected as stale before this is asked.
        """
        now_ms = int(now * 1000)
        with self._lock, self._transaction():
            self._db.execute(
                "DELETE FROM seen_command WHERE seen < ?", (now_ms - int(horizon_s * 1000),)
            )
            cur = self._db.execute(
                "INSERT OR IGNORE INTO seen_command (id, seen) VALUES (?, ?)", (command_id, now_ms)
            )
            return cur.rowcount == 1

    def close(self) -> None:
        """Close the database; further calls fail."""
        with self._lock:
            self._db.close()

    # --- helpers ------------------------------------------------------------------------------
    def _init_epoch(self) -> str:
        with self._transaction():
            row = self._db.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()
            if row:
                return str(row[0])
            epoch = secrets.token_hex(8)
            self._db.execute("INSERT INTO meta (name, value) VALUES ('epoch', ?)", (epoch,))
            return epoch

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self._path)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT`` (rollback on error), mapping SQLite errors to SyncError."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise SyncError(f"outbox {self._path}: cannot begin transaction: {exc}") from exc

    def __exit__(self, exc_type: type[BaseException] | None, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._db.execute("ROLLBACK")
                raise SyncError(f"outbox {self._path}: commit failed: {err}") from err
            return
        self._db.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise SyncError(f"outbox {self._path}: {exc}") from exc


def _chunks(items: Sequence[int], size: int) -> list[tuple[int, ...]]:
    return [tuple(items[i : i + size]) for i in range(0, len(items), size)]
