"""The station's index: devices, uploads, segments with their receipts, witness state, events.

One small interface, two implementations: :class:`SqliteIndex` (a file in the data dir, WAL)
and :class:`PostgresIndex` (``database = "postgresql://…"``), so several station processes on
several machines can share one index and one store. Every rule that keeps two processes from
double-storing a segment or losing a receipt is a database rule, never an in-process lock:

* ``segments`` has the primary key ``(device_id, device_seq)``; a segment row is inserted
  *with its receipt* by ``INSERT … ON CONFLICT DO NOTHING`` and then read back, so whichever
  process won, every caller returns the one stored receipt;
* the witness state of a device (``checkpoints``) advances by compare-and-swap
  (``UPDATE … WHERE size = old AND root = old``); a process that lost the race re-reads and
  re-checks consistency against the newer state;
* upload states move by ``UPDATE … WHERE state = expected``, so an upload is finalised or
  expired once.

Locking: each instance holds one connection used under ``self._lock`` (the server calls it
from worker threads); the lock only serialises use of that connection, not the rules above.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .enrolment import Enrolment, parse_enrolment
from .indexdesk import DeskRecords
from .indexkeys import DeviceKeyRecords
from .indexrows import (
    ABSENT_CREDENTIAL,
    CheckpointRow,
    CredentialRow,
    KeptConsistency,
    KeptInclusion,
    SegmentRow,
    UploadRow,
    credential_row,
    segment_row,
)
from .indexschema import (
    CREDENTIAL_TABLE,
    DESK_TABLES,
    DEVICE_KEYS_TABLE,
    PG_LOGS,
    PG_WIDEN_TIMES,
    SQLITE_LOGS,
    TABLES,
)

__all__ = ["ABSENT_CREDENTIAL", "CheckpointRow", "CredentialRow", "Index", "KeptConsistency",
           "KeptInclusion", "PostgresIndex", "SegmentRow", "SqliteIndex", "UploadRow", "open_index"]

_SEGMENT_COLUMNS = ("device_id", "device_seq", "recording_id", "seq", "path", "cipher_sha256",
                    "manifest_sha256", "cipher_bytes", "manifest_bytes", "leaf_index",
                    "checkpoint_size", "stored_utc", "receipt")
_UPLOAD_COLUMNS = "upload_id, device_id, length, metadata, state, created, updated"


class Index(DeskRecords, DeviceKeyRecords):
    """The index operations; subclasses supply the connection and the SQL dialect. The
    evidence desk's records (kept proofs, holds, deletions) come from :class:`DeskRecords`,
    the keys devices rotated to from :class:`DeviceKeyRecords`."""

    _placeholder = "?"
    _logs_ddl = SQLITE_LOGS

    def __init__(self) -> None:
        self._lock = threading.Lock()

    # -- plumbing ---------------------------------------------------------------------------
    def _connection(self) -> Any:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql if self._placeholder == "?" else sql.replace("?", self._placeholder)

    @contextmanager
    def _cursor(self) -> Iterator[Any]:
        with self._lock:
            cur = self._connection().cursor()
            try:
                yield cur
            finally:
                cur.close()

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> int:
        with self._cursor() as cur:
            cur.execute(self._sql(sql), tuple(args))
            return int(cur.rowcount)

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._cursor() as cur:
            cur.execute(self._sql(sql), tuple(args))
            return [tuple(r) for r in cur.fetchall()]

    def create_schema(self) -> None:
        """Create the tables if they do not exist (idempotent; safe from several processes)."""
        ddl = TABLES + self._logs_ddl + DESK_TABLES + CREDENTIAL_TABLE + DEVICE_KEYS_TABLE
        for stmt in ddl.split(";"):
            if stmt.strip():
                self._exec(stmt)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._connection().close()

    # -- devices ----------------------------------------------------------------------------
    def enrol(self, e: Enrolment, utc: str) -> bool:
        """Register a device; False if it was already registered with this record's keys (the
        enrolled evidence key or one it rotated to through endorsed rotations: a rotated
        device's fresh record changes nothing).

        A different key under a registered id is refused (ValueError): replacing a device's
        key is a decision for a person, not a side effect of re-reading a file.
        """
        added = self._exec("INSERT INTO devices (device_id, public_key, tls_key_sha256, record, "
                           "enrolled_utc) VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO NOTHING",
                           (e.device_id, e.public_b64, e.tls_key_sha256,
                            json.dumps(e.record, sort_keys=True), utc))
        if added:
            return True
        old = self.device(e.device_id)
        if old is None or e.public_key not in old.keys or old.tls_key_sha256 != e.tls_key_sha256:
            raise ValueError(f"device {e.device_id} is already registered with other keys")
        return False

    def device(self, device_id: str) -> Enrolment | None:
        """The registered device with every key it may sign with (``keys``: the enrolled one,
        then the successors its endorsed rotations introduced, and where each retired key's
        span of the log ends: :mod:`.keyspans`), or None."""
        rows = self._rows("SELECT record FROM devices WHERE device_id = ?", (device_id,))
        if not rows:
            return None
        return self._with_successors(parse_enrolment(json.loads(rows[0][0])))

    # -- events and alarms ------------------------------------------------------------------
    def event(self, utc: str, device_id: str | None, kind: str, detail: str) -> None:
        """Record something that happened (a refusal, an expiry, an enrolment)."""
        self._exec("INSERT INTO events (utc, device_id, kind, detail) VALUES (?, ?, ?, ?)",
                   (utc, device_id, kind, detail[:2000]))

    def alarm(self, utc: str, device_id: str | None, kind: str, detail: str) -> None:
        """Record evidence of tampering (fork, rollback, different bytes for a stored segment)."""
        self._exec("INSERT INTO alarms (utc, device_id, kind, detail) VALUES (?, ?, ?, ?)",
                   (utc, device_id, kind, detail[:2000]))

    def fork_alarm(self, utc: str, device_id: str, held: CheckpointRow, kind: str,
                   detail: str) -> bool:
        """Record a fork or rollback against the ``held`` checkpoint once; True if this call
        raised it. The witness endpoint and every MQTT monitor process report the same fork
        (one contradicted held checkpoint) through here, so it is one alarm, not one per
        process or per message; ``log_forks`` keeps the first report even if the ``alarms``
        row after it is lost to a crash."""
        added = self._exec("INSERT INTO log_forks (device_id, held_size, held_root, kind, "
                           "detail, utc) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device_id, "
                           "held_size, held_root) DO NOTHING",
                           (device_id, held.size, held.root, kind, detail[:2000], utc)) == 1
        if added:
            self.alarm(utc, device_id, kind, detail)
        return added

    def events(self) -> list[tuple[str, str | None, str, str]]:
        """All events, oldest first: (utc, device, kind, detail)."""
        return [(r[0], r[1], r[2], r[3]) for r in
                self._rows("SELECT utc, device_id, kind, detail FROM events ORDER BY id")]

    def alarms(self) -> list[tuple[str, str | None, str, str]]:
        """All alarms, oldest first: (utc, device, kind, detail)."""
        return [(r[0], r[1], r[2], r[3]) for r in
                self._rows("SELECT utc, device_id, kind, detail FROM alarms ORDER BY id")]

    # -- uploads ----------------------------------------------------------------------------
    def create_upload(self, row: UploadRow, max_open: int) -> bool:
        """Insert an open upload unless the device already has ``max_open`` open ones."""
        return self._exec(
            f"INSERT INTO uploads ({_UPLOAD_COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ? WHERE "
            "(SELECT count(*) FROM uploads WHERE device_id = ? AND state = 'open') < ?",
            (row.upload_id, row.device_id, row.length, row.metadata, row.state, row.created,
             row.updated, row.device_id, max_open)) == 1

    def upload(self, upload_id: str) -> UploadRow | None:
        """One upload, or None."""
        rows = self._rows(f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE upload_id = ?",
                          (upload_id,))
        return UploadRow(*rows[0]) if rows else None

    def set_length(self, upload_id: str, length: int) -> bool:
        """Declare a deferred length once; False if it was already declared."""
        return self._exec("UPDATE uploads SET length = ? WHERE upload_id = ? AND length IS NULL",
                          (length, upload_id)) == 1

    def touch(self, upload_id: str, now: float) -> None:
        """Note activity on an upload (idle expiry counts from here)."""
        self._exec("UPDATE uploads SET updated = ? WHERE upload_id = ?", (now, upload_id))

    def move_upload(self, upload_id: str, expected: str, state: str, now: float) -> bool:
        """Change an upload's state if it is still ``expected`` (exactly one caller wins)."""
        return self._exec("UPDATE uploads SET state = ?, updated = ? WHERE upload_id = ? AND "
                          "state = ?", (state, now, upload_id, expected)) == 1

    def idle_uploads(self, before: float) -> list[UploadRow]:
        """Open uploads with no activity since ``before``."""
        rows = self._rows(f"SELECT {_UPLOAD_COLUMNS} FROM uploads WHERE state = 'open' AND "
                          "updated < ?", (before,))
        return [UploadRow(*r) for r in rows]

    # -- witness state ----------------------------------------------------------------------
    def checkpoint(self, device_id: str) -> CheckpointRow | None:
        """The newest checkpoint held for a device, or None."""
        rows = self._rows("SELECT size, root, note FROM checkpoints WHERE device_id = ?",
                          (device_id,))
        return CheckpointRow(int(rows[0][0]), rows[0][1], rows[0][2]) if rows else None

    def advance_checkpoint(self, device_id: str, old: CheckpointRow | None, new: CheckpointRow,
                           utc: str) -> bool:
        """Replace ``old`` by ``new`` atomically; False if another process changed it first."""
        if old is None:
            return self._exec("INSERT INTO checkpoints (device_id, size, root, note, updated_utc) "
                              "VALUES (?, ?, ?, ?, ?) ON CONFLICT (device_id) DO NOTHING",
                              (device_id, new.size, new.root, new.note, utc)) == 1
        return self._exec("UPDATE checkpoints SET size = ?, root = ?, note = ?, updated_utc = ? "
                          "WHERE device_id = ? AND size = ? AND root = ?",
                          (new.size, new.root, new.note, utc, device_id, old.size,
                           old.root)) == 1

    # -- segments ---------------------------------------------------------------------------
    def insert_segment(self, row: SegmentRow) -> SegmentRow:
        """Store a segment row with its receipt unless one exists; return the stored row."""
        cols = ", ".join(_SEGMENT_COLUMNS)
        marks = ", ".join("?" for _ in _SEGMENT_COLUMNS)
        self._exec(f"INSERT INTO segments ({cols}) VALUES ({marks}) "
                   "ON CONFLICT (device_id, device_seq) DO NOTHING",
                   tuple(getattr(row, c) for c in _SEGMENT_COLUMNS))
        stored = self.segment(row.device_id, row.device_seq)
        assert stored is not None  # inserted or already there; rows are never deleted
        return stored

    def segment(self, device_id: str, device_seq: int) -> SegmentRow | None:
        """One stored segment, or None."""
        rows = self._rows(f"SELECT {', '.join(_SEGMENT_COLUMNS)} FROM segments WHERE "
                          "device_id = ? AND device_seq = ?", (device_id, device_seq))
        return segment_row(rows[0]) if rows else None

    def segments(self) -> list[SegmentRow]:
        """Every stored segment, by device and sequence."""
        rows = self._rows(f"SELECT {', '.join(_SEGMENT_COLUMNS)} FROM segments "
                          "ORDER BY device_id, device_seq")
        return [segment_row(r) for r in rows]

    # -- device C2PA credentials ---------------------------------------------------------
    def record_credential(self, row: CredentialRow) -> CredentialRow:
        """Record a credential's state unless a valid one is recorded (that one is final);
        the row the index now holds."""
        cols = "device_id, device_seq, state, reason, sha256, bytes, utc"
        self._exec(f"INSERT INTO segment_credentials ({cols}) VALUES (?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (device_id, device_seq) DO UPDATE SET state = excluded.state, "
                   "reason = excluded.reason, sha256 = excluded.sha256, bytes = excluded.bytes, "
                   "utc = excluded.utc WHERE segment_credentials.state <> 'valid'",
                   (row.device_id, row.device_seq, row.state, row.reason[:500], row.sha256,
                    row.bytes, row.utc))
        held = self.credential(row.device_id, row.device_seq)
        assert held is not None  # inserted or kept; rows are never deleted
        return held

    def credential(self, device_id: str, device_seq: int) -> CredentialRow | None:
        """The recorded credential state of one segment, or None (absent)."""
        rows = self._rows("SELECT device_id, device_seq, state, reason, sha256, bytes, utc FROM "
                          "segment_credentials WHERE device_id = ? AND device_seq = ?",
                          (device_id, device_seq))
        return credential_row(rows[0]) if rows else None

    def credentials(self) -> dict[tuple[str, int], CredentialRow]:
        """Every recorded credential state, by (device, device_seq)."""
        rows = self._rows("SELECT device_id, device_seq, state, reason, sha256, bytes, utc FROM "
                          "segment_credentials")
        return {(r[0], int(r[1])): credential_row(r) for r in rows}

    # -- console: users, sessions, audit (agent/station/console) ---------------------------
    def user_add(self, username: str, password: str, role: str, utc: str) -> bool:
        """Add a console user; False if the name is taken."""
        return self._exec("INSERT INTO console_users (username, password, role, created_utc, "
                          "updated_utc) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                          (username, password, role, utc, utc)) == 1

    def user_update(self, username: str, column: str, value: str, utc: str) -> bool:
        """Set a user's ``password`` or ``role``; False if there is no such user."""
        if column not in ("password", "role"):
            raise ValueError(f"not a user column: {column}")
        return self._exec(f"UPDATE console_users SET {column} = ?, updated_utc = ? "
                          "WHERE username = ?", (value, utc, username)) == 1

    def users(self) -> list[tuple[str, str, str, str]]:
        """(username, password hash, role, created_utc) of every user, by name."""
        return [(r[0], r[1], r[2], r[3]) for r in self._rows(
            "SELECT username, password, role, created_utc FROM console_users ORDER BY username")]

    def session_add(self, token_sha256: str, username: str, csrf: str, *, address: str,
                    created: float, expires: float) -> None:
        """Record a signed-in browser (the index keeps only the token's hash)."""
        self._exec("INSERT INTO console_sessions (token_sha256, username, csrf, address, "
                   "created, expires) VALUES (?, ?, ?, ?, ?, ?)",
                   (token_sha256, username, csrf, address, created, expires))

    def session(self, token_sha256: str, now: float) -> tuple[str, str, float] | None:
        """(username, csrf, expires) of a live session, or None."""
        rows = self._rows("SELECT username, csrf, expires FROM console_sessions WHERE "
                          "token_sha256 = ? AND expires > ?", (token_sha256, now))
        return (rows[0][0], rows[0][1], float(rows[0][2])) if rows else None

    def session_end(self, token_sha256: str | None, now: float, *,
                    username: str | None = None) -> int:
        """End one session (sign-out), every session of ``username`` (password or role
        change), and any expired ones; how many rows went."""
        return self._exec("DELETE FROM console_sessions WHERE token_sha256 = ? OR "
                          "username = ? OR expires <= ?", (token_sha256, username, now))

    def audit(self, utc: str, username: str, action: str, *, address: str,
              device_id: str | None, detail: str, outcome: str) -> None:
        """Record one console act (sign-in, command, refusal) with who and from where."""
        self._exec("INSERT INTO console_audit (utc, username, address, action, device_id, "
                   "detail, outcome) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   (utc, username[:64], address[:64], action[:64], device_id, detail[:2000],
                    outcome[:200]))

    def audit_log(self, device_id: str | None = None, limit: int = 200
                  ) -> list[tuple[str, str, str, str, str | None, str, str]]:
        """Newest first: (utc, user, address, action, device, detail, outcome)."""
        where = "WHERE device_id = ? " if device_id is not None else ""
        args: tuple[Any, ...] = (device_id, limit) if device_id is not None else (limit,)
        return [(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in self._rows(
            "SELECT utc, username, address, action, device_id, detail, outcome FROM "
            f"console_audit {where}ORDER BY id DESC LIMIT ?", args)]


class SqliteIndex(Index):
    """The index in one SQLite file (WAL), for a station on one machine."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                     timeout=30.0)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")  # a receipt is promised after commit
        self.create_schema()

    def _connection(self) -> Any:
        return self._conn


class PostgresIndex(Index):
    """The index in PostgreSQL, shared by several station processes and machines."""

    _placeholder = "%s"
    _logs_ddl = PG_LOGS

    def __init__(self, url: str) -> None:
        super().__init__()
        import psycopg  # only a station configured for PostgreSQL needs the driver

        self._conn = psycopg.connect(url, autocommit=True)
        with self._lock:
            # Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalogue.
            self._conn.execute("SELECT pg_advisory_lock(7218)")
        try:
            self.create_schema()
            self._widen_times()
        finally:
            with self._lock:
                self._conn.execute("SELECT pg_advisory_unlock(7218)")

    def _widen_times(self) -> None:
        """An index made when times were REAL (4 bytes in PostgreSQL) gets DOUBLE PRECISION."""
        kinds = self._rows("SELECT data_type FROM information_schema.columns WHERE "
                           "table_name = 'console_sessions' AND column_name = 'expires'")
        if kinds and kinds[0][0] == "real":
            for stmt in PG_WIDEN_TIMES.split(";"):
                if stmt.strip():
                    self._exec(stmt)

    def _connection(self) -> Any:
        return self._conn


def open_index(database: str, data_dir: Path) -> Index:
    """The index a configuration names: a PostgreSQL URL, or SQLite in ``data_dir``."""
    if database:
        return PostgresIndex(database)
    data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteIndex(data_dir / "index.sqlite")
