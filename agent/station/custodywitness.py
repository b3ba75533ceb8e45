"""The station's custody log, witnessed: every checkpoint of ``<station data>/log/`` goes to
each configured C2SP tlog-witness (``[[witnesses]]``), as a device's evidence log does.

The station signs its own custody log (:mod:`.stationlog`), which proves nothing against the
station: whoever holds its key can rewrite a deletion out of the history and re-sign. A witness
cosigns a checkpoint only if it extends the last one it cosigned, so once a witness holds size
N, a rewritten history is refused by it and no longer matches the cosigned note kept here.

What is submitted, and when:

* at start, the checkpoint on disk (a history written while no station process ran);
* after every append this process makes (:meth:`CustodyWitnessing.notify`, subscribed to the
  :class:`~.stationlog.StationLog`): the new checkpoint is queued at once;
* every ``watch_s``, the checkpoint file again if it changed: the acts of *other* processes
  (``bodycam station hold`` from a shell, a second station process) reach the witnesses too.

Nothing here blocks a custody act: the act is logged first, then only queued for the
:class:`agent.witness.WitnessPool`, whose per-witness threads retry with exponential backoff
(``[witnessing] retry_s`` doubling to ``max_retry_s``) while a witness is unreachable. Each
witness's newest cosigned checkpoint is kept in ``<station data>/log/witnessed/`` (the device's
layout), and the pool's status in ``<station data>/custody-witness.json`` for ``station info``.

Several processes. Station processes that share a data directory (and so the log) would race
each other's submissions and notes, so exactly one of them submits: the holder of an exclusive
``flock`` on ``<station data>/custody-witness.lock``. The others keep trying to take it every
``watch_s``; their appends reach the witnesses through the holder's watch of the checkpoint
file, and if the holder stops, one of them takes over. The holder submits only the newest
checkpoint on disk, so a witness never sees sizes go backwards from this station; a witness
that answers "conflict" with an older size is handled by the client's retry from that size.

Threading: the watch thread is the only one that builds the pool or touches the lock and the
status file; :meth:`notify` (any appending thread) only queues into an existing pool and wakes
the watcher. ``_pool`` is assigned once and read without a lock (a reference read is atomic).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import ssl
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.atomic import atomic_write
from agent.config import WitnessConfig
from agent.evidence.checkpoint import parse_signed_checkpoint
from agent.evidence.log import replay_entries
from agent.evidence.merkle import consistency_proof, leaf_hash
from agent.witness import VerifierKey, WitnessClient, WitnessPool, verified_cosignatures
from agent.witness.refusals import CosignatureInvalid
from agent.witnessing import WITNESSED_DIR, witness_tls
from hw.errors import ConfigError, EvidenceError, LogCorrupt, VerificationError

from .stationlog import STATION_LOG_DIR

__all__ = ["LEADER_LOCK", "STATUS_FILE", "CustodyWitnessing", "LogProof", "custody_witness_status"]

log = logging.getLogger("bodycam.station")

LEADER_LOCK = "custody-witness.lock"
STATUS_FILE = "custody-witness.json"
_MAX_CHECKPOINT = 16 << 10
_MAX_STATUS = 1 << 20


class LogProof:
    """Consistency proofs from the station log on disk, read without the append lock.

    Entries are only ever appended (a torn final record is cut at the next open, never a
    covered one), so the leaves read so far stay valid and each call reads only the new
    bytes. A replaced file (another inode) or a shorter one is read again from the start; a
    log rewritten in place gives proofs that do not lead to the rewritten checkpoint's root,
    which the witness refuses — the point of witnessing it. Thread-safe (``_lock``).
    """

    def __init__(self, log_dir: Path) -> None:
        self._path = Path(log_dir) / "entries.bin"
        self._lock = threading.Lock()
        self._inode = -1
        self._consumed = 0
        self._leaves: list[bytes] = []

    def __call__(self, old_size: int, new_size: int) -> list[bytes]:
        """Proof that the first ``old_size`` entries are a prefix of the first ``new_size``."""
        with self._lock:
            self._refresh()
            if new_size > len(self._leaves):
                raise EvidenceError(f"{self._path}: the log holds {len(self._leaves)} entries, "
                                    f"its checkpoint {new_size}")
            return consistency_proof(self._leaves[:new_size], old_size)

    def _refresh(self) -> None:
        with open(self._path, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_ino != self._inode or st.st_size < self._consumed:
                self._inode, self._consumed, self._leaves = st.st_ino, 0, []
            f.seek(self._consumed)
            rep = replay_entries(f.read())
        self._leaves += [leaf_hash(r) for r in rep.records]
        self._consumed += rep.valid_length


class CustodyWitnessing:
    """Submits the station log's checkpoints to every configured witness (module docstring)."""

    def __init__(self, witnesses: Sequence[WitnessConfig], data_dir: Path, *,
                 retry_s: float = 2.0, max_retry_s: float = 300.0, watch_s: float = 2.0) -> None:
        if not witnesses:
            raise ValueError("no witness configured")
        self._clients = [_client(i, w) for i, w in enumerate(witnesses)]
        self._data = Path(data_dir)
        self._log_dir = self._data / STATION_LOG_DIR
        self._retry, self._max_retry, self._watch = retry_s, max_retry_s, watch_s
        self._wake = threading.Event()
        self._led = threading.Event()
        self._stopping = threading.Event()
        self._pool: WitnessPool | None = None
        self._lock_fd = -1
        self._seen: tuple[int, int, int] | None = None
        self._written: dict[str, Any] | None = None
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        """Whether this process is the one submitting (it holds the lock)."""
        return self._pool is not None

    def start(self) -> None:
        """Start the watch thread; it submits the current checkpoint as soon as it leads."""
        self._thread = threading.Thread(target=self._run, daemon=True, name="custody-witness")
        self._thread.start()

    def notify(self, checkpoint: bytes) -> None:
        """A :meth:`StationLog.subscribe` listener: queue the new checkpoint; never blocks."""
        pool = self._pool
        if pool is not None:
            pool.submit(checkpoint)
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """Per witness name: the pool's status (empty while another process submits)."""
        pool = self._pool
        return {} if pool is None else {n: s.as_dict() for n, s in pool.status().items()}

    def wait_cosigned(self, size: int, timeout_s: float) -> bool:
        """Block until every witness cosigned at least ``size`` (tests, orderly shutdown)."""
        deadline = time.monotonic() + timeout_s
        if not self._led.wait(timeout_s) or self._pool is None:
            return False
        return self._pool.wait_cosigned(size, max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Stop watching and submitting; the lock passes to another process."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        if self._pool is not None:
            self._pool.close()
            with contextlib.suppress(OSError):
                self._write_status()
        self._release()

    def submit_once(self, wait_s: float) -> dict[str, Any] | None:
        """For a one-shot process (a desk command): if no other process submits, submit the
        current checkpoint and wait up to ``wait_s`` for each witness to cosign it or fail
        once; the per-witness status. None when a running process holds the lock (it submits
        what this process appended within ``watch_s``)."""
        if not self._lead():
            return None
        try:
            size = self._submit_from_disk()
            pool = self._pool
            assert pool is not None
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and not all(
                    (s.cosigned_size or -1) >= size or s.failures
                    for s in pool.status().values()):
                time.sleep(0.02)  # a bounded poll of the workers' status, not of the network
            return self.status()
        finally:
            self.close()

    # --- the watch thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                if self._pool is not None or self._lead():
                    self._submit_from_disk()
                    self._write_status()
            except Exception:  # the watcher must outlive a bad read or a full disk
                log.exception("custody log witnessing: watch pass failed")
            self._wake.wait(self._watch)
            self._wake.clear()

    def _lead(self) -> bool:
        """Take the submitter's lock if free; build and start the pool then."""
        fd = os.open(self._data / LEADER_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        clients = self._clients
        try:
            pool = WitnessPool(clients, directory=self._log_dir / WITNESSED_DIR,
                               proof=LogProof(self._log_dir), backoff_s=self._retry,
                               max_backoff_s=self._max_retry)
        except BaseException:
            self._release()
            raise
        pool.start()
        self._pool = pool
        self._led.set()
        log.info("custody log witnessing: submitting to %s",
                 ", ".join(c.name for c in clients))
        return True

    def _release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _submit_from_disk(self) -> int:
        """Queue the checkpoint file if it changed since last queued; its size (-1: none)."""
        path = self._log_dir / "checkpoint"
        try:
            st = os.stat(path)
            sig = (st.st_ino, st.st_mtime_ns, st.st_size)
            text = path.read_bytes()[:_MAX_CHECKPOINT]
        except FileNotFoundError:
            return -1  # no custody act yet
        try:
            size = parse_signed_checkpoint(text).checkpoint.size
        except VerificationError as exc:
            if sig != self._seen:  # once per damaged file, not every watch_s
                log.error("custody log witnessing: %s is not a signed checkpoint (%s); "
                          "nothing submitted", path, exc)
                self._seen = sig
            return -1
        if sig != self._seen and self._pool is not None:
            self._pool.submit(text)
            self._seen = sig
        return size

    def _write_status(self) -> None:
        doc = {"pid": os.getpid(), "witnesses": self.status()}
        if doc != self._written:
            atomic_write(self._data / STATUS_FILE,
                         json.dumps({**doc, "written_utc": time.time()}, indent=2).encode())
            self._written = doc


def _client(i: int, w: WitnessConfig) -> WitnessClient:
    """The client of ``[[witnesses]]`` entry ``i``; unreadable TLS files are a ConfigError."""
    try:
        return WitnessClient(w.url, w.vkey, timeout_s=w.timeout_s, ssl_context=witness_tls(w))
    except (OSError, ssl.SSLError, ValueError, CosignatureInvalid) as exc:
        raise ConfigError(f"witness {w.url}: {exc}", key=f"witnesses[{i}]") from None


def custody_witness_status(data_dir: Path,
                           witnesses: Sequence[WitnessConfig]) -> list[dict[str, Any]]:
    """Per configured witness, for ``station info``: the cosigned size read from the kept notes
    (each verified with the witness key; the truth even with no station process running), the
    log size it is behind by, and the submitter's last success and error."""
    log_dir = Path(data_dir) / STATION_LOG_DIR
    try:
        size = parse_signed_checkpoint(
            (log_dir / "checkpoint").read_bytes()[:_MAX_CHECKPOINT]).checkpoint.size
    except (OSError, VerificationError):
        size = 0
    try:
        with open(Path(data_dir) / STATUS_FILE, "rb") as f:
            reported = json.loads(f.read(_MAX_STATUS)).get("witnesses", {})
    except (OSError, ValueError, AttributeError):
        reported = {}
    out = []
    for w in witnesses:
        vkey = VerifierKey.parse(w.vkey)
        cosigned, at = _best_note(log_dir / WITNESSED_DIR, vkey)
        pool = reported.get(vkey.name, {}) if isinstance(reported, dict) else {}
        out.append({"name": vkey.name, "url": w.url, "cosigned_size": cosigned,
                    "cosigned_at": at, "behind": size - (cosigned or 0),
                    **{k: pool.get(k) for k in ("last_success_utc", "last_error",
                                                "last_error_utc", "pending_size",
                                                "witness_rollback")},
                    "failures": pool.get("failures", 0)})
    return out


def _best_note(directory: Path, vkey: VerifierKey) -> tuple[int | None, int | None]:
    """The largest size ``vkey`` verifiably cosigned among the kept notes, and when."""
    best: tuple[int | None, int | None] = (None, None)
    for path in sorted(directory.glob("*.note")) if directory.is_dir() else []:
        try:
            text = path.read_bytes()[:_MAX_CHECKPOINT]
            cosig = verified_cosignatures(text, [vkey]).get(vkey.name)
            size = parse_signed_checkpoint(text).checkpoint.size
        except (OSError, VerificationError, CosignatureInvalid, LogCorrupt):
            continue
        if cosig is not None and (best[0] is None or size > best[0]):
            best = (size, cosig.timestamp)
    return best
