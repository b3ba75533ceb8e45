"""Asks every configured witness to cosign the device's newest checkpoint, in the background.

The recorder must never wait on a witness: :meth:`WitnessPool.submit` only records the newest
checkpoint and wakes the workers. Each witness has its own worker thread, so one unreachable
witness (a 10 s timeout, a long backoff) delays no other. Only the newest checkpoint matters —
a cosignature on size N vouches for every smaller size of the same consistent log — so a
worker that falls behind skips straight to the latest.

Each witness's newest cosigned checkpoint is kept as a complete signed note (the device's
checkpoint plus the witness's cosignature line, verifiable with any signed-note tool) in
``<directory>/<witness name>-<key id>.note``, replaced atomically: storage stays bounded at
one small file per witness. On start those files tell each client the size its witness
already holds, so a restart costs no extra round trip.

Failures back off exponentially (``backoff_s`` doubling up to ``max_backoff_s``) and are
reported by :meth:`status` for telemetry, including refusals: a 422 means a witness holds a
checkpoint this log does not extend.

Locking: ``_cond`` (one Condition) guards every worker's pending checkpoint, retry time and
status, and the stop flag. A worker holds it only to read or update those, never during
network I/O or file writes.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.atomic import atomic_write
from agent.evidence.checkpoint import parse_signed_checkpoint
from hw.errors import VerificationError

from .cosignature import MAX_NOTE_BYTES, add_cosignatures, verified_cosignatures
from .witness_client import WitnessClient

__all__ = ["WitnessPool", "WitnessStatus"]

_log = logging.getLogger(__name__)

ConsistencyProof = Callable[[int, int], Sequence[bytes]]
"""``(old_size, new_size) → proof``: e.g. :meth:`agent.evidence.log.EvidenceLog.consistency_proof`."""

MAX_WITNESSES = 32


@dataclass(frozen=True, slots=True)
class WitnessStatus:
    """What telemetry reports about one witness."""

    name: str
    url: str
    cosigned_size: int | None = None
    cosigned_at: int | None = None  # the witness's timestamp on that cosignature (unix s)
    last_success_utc: float | None = None
    last_error: str | None = None
    last_error_utc: float | None = None
    failures: int = 0  # consecutive
    pending_size: int | None = None
    witness_rollback: str | None = None  # the witness once cosigned more than it now holds

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping."""
        return {f: getattr(self, f) for f in self.__slots__}


def _file_name(client: WitnessClient) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]", "_", client.name)[:80]
    return f"{slug}-{client.vkey.key_id.hex()}.note"


@dataclass(slots=True)
class _Worker:
    client: WitnessClient
    path: Path
    status: WitnessStatus
    pending: bytes | None = None
    pending_size: int = -1
    retry_at: float = 0.0
    backoff: float = 0.0
    thread: threading.Thread | None = field(default=None, repr=False)


class WitnessPool:
    """Background cosignature collection from any number of witnesses (see module docstring)."""

    def __init__(self, clients: Sequence[WitnessClient], *, directory: Path,
                 proof: ConsistencyProof, backoff_s: float = 2.0, max_backoff_s: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        if len(clients) > MAX_WITNESSES:
            raise ValueError(f"at most {MAX_WITNESSES} witnesses")
        if len({c.name for c in clients}) != len(clients):
            raise ValueError("two witnesses share a name")
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._proof = proof
        self._backoff = backoff_s
        self._max_backoff = max_backoff_s
        self._clock = clock
        self._cond = threading.Condition()
        self._stopping = False
        self._workers = [self._load(c) for c in clients]

    def _load(self, client: WitnessClient) -> _Worker:
        path = self._dir / _file_name(client)
        status = WitnessStatus(client.name, client.url)
        with contextlib.suppress(FileNotFoundError):
            try:
                note = path.read_bytes()[: MAX_NOTE_BYTES + 1]
                cosig = verified_cosignatures(note, [client.vkey]).get(client.name)
                size = parse_signed_checkpoint(note).checkpoint.size
            except FileNotFoundError:
                raise  # no note yet (first contact): nothing to report
            except (VerificationError, OSError) as exc:
                status = replace(status, last_error=f"stored cosignature unusable: {exc}")
            else:
                if cosig is not None:
                    client.known_size = client.cosigned_size = size
                    status = replace(status, cosigned_size=size, cosigned_at=cosig.timestamp)
        return _Worker(client, path, status)

    def start(self) -> None:
        """Start one daemon worker per witness."""
        for w in self._workers:
            if w.thread is None:
                w.thread = threading.Thread(target=self._run, args=(w,), daemon=True,
                                            name=f"witness-{w.client.name}")
                w.thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the workers; an exchange in flight ends within the client's timeout."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout_s
        for w in self._workers:
            if w.thread is not None:
                w.thread.join(max(0.0, deadline - time.monotonic()))

    def submit(self, checkpoint: bytes) -> None:
        """Queue the device's newest signed checkpoint for every witness. Never blocks on I/O."""
        try:
            size = parse_signed_checkpoint(checkpoint).checkpoint.size
        except (VerificationError, ValueError) as exc:
            _log.error("witness pool: not a signed checkpoint, not submitted: %s", exc)
            return
        with self._cond:
            for w in self._workers:
                if size >= w.pending_size:
                    w.pending, w.pending_size = checkpoint, size
                    w.status = replace(w.status, pending_size=size)
            self._cond.notify_all()

    def status(self) -> dict[str, WitnessStatus]:
        """A snapshot of every witness's status, by name."""
        with self._cond:
            return {w.client.name: w.status for w in self._workers}

    def wait_cosigned(self, size: int, timeout_s: float) -> bool:
        """Block until every witness cosigned at least ``size`` (tests, orderly shutdown)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not all((w.status.cosigned_size or -1) >= size for w in self._workers):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _next(self, w: _Worker) -> tuple[bytes, int] | None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                if w.pending is not None and now >= w.retry_at:
                    return w.pending, w.pending_size
                self._cond.wait(None if w.pending is None else w.retry_at - now)
            return None

    def _run(self, w: _Worker) -> None:
        while (job := self._next(w)) is not None:
            checkpoint, size = job
            try:
                cosig = w.client.add_checkpoint(checkpoint, self._proof_to(size))
                atomic_write(w.path, add_cosignatures(checkpoint, [cosig]))
            except Exception as exc:  # a worker must outlive any one witness's fault
                self._failed(w, exc)
                continue
            with self._cond:
                if w.pending_size == size:
                    w.pending, w.pending_size = None, -1
                w.backoff, w.retry_at = 0.0, 0.0
                w.status = replace(w.status, cosigned_size=size, cosigned_at=cosig.timestamp,
                                   last_success_utc=self._clock(), failures=0,
                                   witness_rollback=w.client.rollback,
                                   pending_size=w.pending_size if w.pending else None)
                self._cond.notify_all()

    def _proof_to(self, size: int) -> Callable[[int], Sequence[bytes]]:
        return lambda old: self._proof(old, size)

    def _failed(self, w: _Worker, exc: Exception) -> None:
        _log.warning("witness %s: %s", w.client.name, exc)
        with self._cond:
            w.backoff = min(self._max_backoff, w.backoff * 2 or self._backoff)
            w.retry_at = time.monotonic() + w.backoff
            w.status = replace(w.status, last_error=f"{type(exc).__name__}: {exc}",
                               last_error_utc=self._clock(), failures=w.status.failures + 1)
            self._cond.notify_all()
