"""The append-only evidence log: persisted Merkle leaves with a signed checkpoint.

``entries.bin`` is a sequence of framed records ``length (u32 BE) ‖ crc32 (u32 BE) ‖ data``
where ``data`` is the canonical JSON of one entry (a sealed segment or an event). An append
is durable (written + fsynced), then folded into the Merkle frontier, then covered by a new
signed ``checkpoint`` written atomically — all before :meth:`EvidenceLog.append` returns.
``append(..., checkpoint=False)`` (a segment seal, where every fsync is felt) signs the
checkpoint in memory only and leaves the file to :meth:`EvidenceLog.flush_checkpoint`: the
entries are the truth, the file is their signed head, re-signed at open if it is behind
(Ed25519 is deterministic, so the re-signed text is byte for byte the one published).

On open the file is replayed. A crash in the middle of an append leaves at most one torn
final record; it is cut off (it was never acknowledged to anyone). Anything worse — a bad
record followed by more data, or a checkpoint that commits to more or different entries than
the file holds — raises :class:`~hw.errors.LogCorrupt`: that is evidence of damage or
tampering and must not be papered over.

Locking: one ``threading.Lock`` (``_lock``) guards the file, the frontier and the leaf list;
every public method takes it. An exclusive ``flock`` on ``lock`` keeps a second process (a
CLI key rotation while the agent runs) from appending to the same log.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct
import threading
import zlib
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.atomic import atomic_write, fsync_dir, write_durable
from hw.errors import EvidenceError, LogCorrupt, VerificationError

from .canonical import canonical_json
from .checkpoint import Checkpoint, parse_signed_checkpoint, sign_checkpoint
from .keys import DeviceKey
from .merkle import (
    CompactRange,
    LeafHashes,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
)

__all__ = ["AppendResult", "EvidenceLog", "Replay", "origin_for", "replay_entries"]

log = logging.getLogger(__name__)

ENTRIES = "entries.bin"
CHECKPOINT = "checkpoint"
_FRAME = struct.Struct(">II")
MAX_RECORD = 1 << 20


def origin_for(device_id: str) -> str:
    """The checkpoint origin (and signed-note key name) of a device's log."""
    if not device_id or any(c in device_id for c in " +\n/"):
        raise ValueError(f"device id {device_id!r} unusable in a log origin")
    return f"bodycam/v1/{device_id}"


@dataclass(frozen=True, slots=True)
class Replay:
    """The records of an entries file and whether a torn final record was found."""

    records: list[bytes]
    valid_length: int
    torn: bool


def replay_entries(data: bytes) -> Replay:
    """Parse framed records; a damaged *final* record is torn, damage before it is corruption."""
    records: list[bytes] = []
    pos = 0
    while pos < len(data):
        if len(data) - pos < _FRAME.size:
            return Replay(records, pos, True)
        length, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if length > MAX_RECORD or end > len(data):
            return Replay(records, pos, True)
        body = data[pos + _FRAME.size : end]
        if zlib.crc32(body) != crc:
            if end == len(data):
                return Replay(records, pos, True)
            raise LogCorrupt(f"log record {len(records)} at byte {pos} fails its checksum")
        records.append(body)
        pos = end
    return Replay(records, pos, False)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where an entry landed and the signed checkpoint that now covers it."""

    index: int
    leaf_hash: bytes
    checkpoint: bytes


class EvidenceLog:
    """Append-only, crash-safe Merkle log in one directory, owned by one process."""

    def __init__(self, directory: Path, key: DeviceKey, origin: str) -> None:
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._key = key
        self._origin = origin
        self._lock = threading.Lock()
        self._lock_fd = os.open(self._dir / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise EvidenceError(f"{self._dir}: evidence log is in use by another process") from None
        self._leaves = LeafHashes()  # 32 bytes per entry, for proofs
        self._checkpoint_behind = False
        self._checkpoint_text = b""
        self._offsets = array("q")  # byte offset of each entry in entries.bin
        self._listeners: list[Callable[[bytes], None]] = []
        self._frontier = CompactRange()
        path = self._dir / ENTRIES
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            self._replay()
        except BaseException:
            self.close()
            raise
        fsync_dir(self._dir)

    def _replay(self) -> None:
        data = (self._dir / ENTRIES).read_bytes()
        rep = replay_entries(data)
        if rep.torn:
            os.ftruncate(self._fd, rep.valid_length)
            os.fsync(self._fd)
        pos = 0
        for rec in rep.records:
            self._offsets.append(pos)
            pos += _FRAME.size + len(rec)
            self._add_leaf(leaf_hash(rec))
        self._reconcile_checkpoint()

    def _reconcile_checkpoint(self) -> None:
        cp_path = self._dir / CHECKPOINT
        if cp_path.exists():
            try:
                cp = parse_signed_checkpoint(cp_path.read_bytes()).checkpoint
            except VerificationError as exc:
                raise LogCorrupt(f"{cp_path}: {exc}") from None
            if cp.origin != self._origin:
                raise LogCorrupt(f"{cp_path}: origin {cp.origin!r}, expected {self._origin!r}")
            if cp.size > len(self._leaves):
                raise LogCorrupt(
                    f"log holds {len(self._leaves)} entries but its signed checkpoint covers "
                    f"{cp.size}: entries were lost or removed")
            if root_of(self._leaves[: cp.size]) != cp.root:
                raise LogCorrupt(f"log entries do not match the signed checkpoint of size {cp.size}")
            if cp.size == len(self._leaves) and cp_path.stat().st_size:
                return
        self._write_checkpoint()

    def _add_leaf(self, h: bytes) -> None:
        self._leaves.append(h)
        self._frontier.append(h)

    def _write_checkpoint(self, *, durable: bool = True) -> bytes:
        cp = Checkpoint(self._origin, self._frontier.size, self._frontier.root())
        text = sign_checkpoint(cp, self._key)
        if durable:
            atomic_write(self._dir / CHECKPOINT, text)
        self._checkpoint_behind = not durable
        self._checkpoint_text = text
        return text

    def flush_checkpoint(self) -> None:
        """Write the checkpoint file if appends left it behind the entries."""
        with self._lock:
            if self._checkpoint_behind:
                self._write_checkpoint()

    def close(self) -> None:
        """Release the file and the process lock (idempotent)."""
        for name in ("_fd", "_lock_fd"):
            fd = getattr(self, name, -1)
            if fd >= 0:
                os.close(fd)
                setattr(self, name, -1)

    def __enter__(self) -> EvidenceLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, entry: Mapping[str, Any], *, checkpoint: bool = True,
               then_key: DeviceKey | None = None) -> AppendResult:
        """Durably append ``entry`` and sign a checkpoint covering it; returns its place.
        With ``checkpoint=False`` the checkpoint file is written later (flush_checkpoint).

        ``then_key`` (a key rotation's entry): once the old key's checkpoint over the entry is
        written, the log signs with ``then_key`` and re-signs that checkpoint, under the same
        lock -- no reader (an uploader proving the rotation's position) ever sees the old
        key's checkpoint as the newest; a crash between the two leaves the old key's, which
        is its last signature (docs/EVIDENCE-FORMAT.md §4)."""
        data = canonical_json(entry)
        if len(data) > MAX_RECORD:
            raise EvidenceError(f"log entry of {len(data)} bytes exceeds {MAX_RECORD}")
        record = _FRAME.pack(len(data), zlib.crc32(data)) + data
        with self._lock:
            offset = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                write_durable(self._fd, record)
            except OSError:
                # Leave no half record behind that a later append would bury mid-file.
                os.ftruncate(self._fd, offset)
                raise
            self._offsets.append(offset)
            h = leaf_hash(data)
            self._add_leaf(h)
            text = self._write_checkpoint(durable=checkpoint)
            if then_key is not None:
                self._key = then_key
                text = self._write_checkpoint(durable=checkpoint)
            result = AppendResult(len(self._leaves) - 1, h, text)
        for listener in self._listeners:
            listener(text)
        return result

    def subscribe(self, listener: Callable[[bytes], None]) -> None:
        """Call ``listener(checkpoint_text)`` after every append (on the appending thread).

        For witnesses: the listener must only queue the checkpoint and return at once; an
        exception from it is logged and never undoes or fails the append.
        """
        def safe(text: bytes) -> None:
            try:
                listener(text)
            except Exception:
                log.exception("a checkpoint listener failed; the entry is logged regardless")

        self._listeners.append(safe)

    def set_key(self, key: DeviceKey, *, durable: bool = True) -> None:
        """Sign from now on with ``key`` (after a rotation) and re-sign the checkpoint; with
        ``durable=False`` its file is written later (flush_checkpoint, or the next append) --
        after a failed write, when writing again at once would fail the same way."""
        with self._lock:
            self._key = key
            self._write_checkpoint(durable=durable)

    @property
    def size(self) -> int:
        """Number of entries."""
        with self._lock:
            return len(self._leaves)

    @property
    def root(self) -> bytes:
        """Current Merkle root."""
        with self._lock:
            return self._frontier.root()

    def last_leaf(self) -> bytes | None:
        """Leaf hash of the newest entry (``prev_leaf`` of the next manifest)."""
        with self._lock:
            return self._leaves[-1] if self._leaves else None

    def checkpoint(self) -> bytes:
        """The current signed checkpoint text (ahead of the file until flush_checkpoint)."""
        with self._lock:
            if self._checkpoint_behind:
                return self._checkpoint_text
            return (self._dir / CHECKPOINT).read_bytes()

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of entry ``index`` in the tree of the first ``size`` entries."""
        with self._lock:
            n = len(self._leaves) if size is None else size
            if not 0 < n <= len(self._leaves):
                raise ValueError(f"tree size {n} outside 1..{len(self._leaves)}")
            return inclusion_proof(self._leaves[:n], index)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the tree of ``old_size`` entries is a prefix of that of ``new_size``."""
        with self._lock:
            n = len(self._leaves) if new_size is None else new_size
            if not 0 <= n <= len(self._leaves):
                raise ValueError(f"tree size {n} outside 0..{len(self._leaves)}")
            return consistency_proof(self._leaves[:n], old_size)

    def entry(self, index: int) -> bytes:
        """The canonical JSON bytes of entry ``index`` (one positioned read, no replay)."""
        with self._lock:
            if not 0 <= index < len(self._leaves):
                raise IndexError(f"log entry {index} outside 0..{len(self._leaves) - 1}")
            header = os.pread(self._fd, _FRAME.size, self._offsets[index])
            length, _crc = _FRAME.unpack(header)
            data = os.pread(self._fd, length, self._offsets[index] + _FRAME.size)
        if leaf_hash(data) != self._leaves[index]:
            raise LogCorrupt(f"log entry {index} changed on disk since it was appended")
        return data

    def entries(self) -> Iterator[tuple[int, bytes]]:
        """``(index, canonical JSON bytes)`` of every entry, oldest first (a snapshot)."""
        with self._lock:
            n = len(self._leaves)
        data = (self._dir / ENTRIES).read_bytes()
        yield from enumerate(replay_entries(data).records[:n])
