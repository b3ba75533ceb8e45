"""The uploader thread: sealed segments leave the device oldest first; receipts come back.

Never the controller thread -- recording always wins. The thread (``offload``) owns the
station client, the backlog cursor and the upload book; other threads only call
:meth:`Offloader.wake` and :meth:`Offloader.status` (which copies fields under ``_lock``).

For each pending segment (:mod:`.backlog`, derived from the log):

1. the upload URL is looked up in the book (:mod:`.book`); if the station still has it, the
   upload resumes from the station's durable offset (``HEAD``), else a new upload is made and
   written to the book *before* a byte is sent;
2. the ciphertext goes out in checksummed PATCHes (whole or not at all at the station), paced
   by ``offload.max_rate`` and paused while the camera pipeline is strained;
3. the segment is finalised with its manifest, log entry and proofs; the receipt is checked
   (names exactly this segment; signed by a configured station key) by the client and again by
   :meth:`EvidenceStore.accept_receipt`, which logs it as ``acknowledged`` with origin
   ``{"via": "offload", "station": <station id>}``. Only then is the book entry dropped.

Nothing here deletes anything. A station that is unreachable or full makes the thread back
off (up to ``offload.retry_s``); a segment the station refuses for another reason, or whose
receipt is refused, waits ``retry_s`` while the others go ahead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.errors import EvidenceError, ReceiptRejected, VerificationError
from agent.evidence.receipt import Receipt
from agent.station.client import StationClient, StationRefused, StationUnreachable

from .backlog import Backlog, PendingSegment
from .book import UploadBook, UploadRef
from .pacing import Backoff, RateLimiter

__all__ = ["OffloadStatus", "Offloader", "ReceiptTaker"]

log = logging.getLogger(__name__)

_IDLE_POLL_S = 1.0
_PRESSURE_POLL_S = 0.25
_RECOVERABLE = ("upload-gone", "no-such-upload", "cipher-mismatch", "too-many-uploads")


class OffloadLog(Protocol):
    """The log as the uploader reads it (entries for the backlog, proofs for finalising)."""

    @property
    def size(self) -> int: ...

    def entry(self, index: int) -> bytes: ...

    def checkpoint(self) -> bytes: ...

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]: ...

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]: ...


class ReceiptTaker(Protocol):
    """The part of :class:`~agent.evidence.store.EvidenceStore` the uploader uses."""

    @property
    def log(self) -> Any: ...

    def accept_receipt(self, receipt: Receipt, *, origin: Mapping[str, Any]) -> int: ...


@dataclass(frozen=True, slots=True)
class OffloadStatus:
    """What ``ctl status``, telemetry and ``fleet watch`` show."""

    state: str  # idle | uploading | yielding | unreachable | station-full | refused | stopped
    backlog: int
    backlog_bytes: int
    oldest_s: float | None
    last_error: str | None
    bytes_sent: int
    receipts: int

    def fields(self) -> dict[str, Any]:
        """``offload_*`` keys; unknown values are omitted, never null."""
        out: dict[str, Any] = {"offload_state": self.state, "offload_backlog": self.backlog,
                               "offload_backlog_bytes": self.backlog_bytes,
                               "offload_bytes_sent": self.bytes_sent,
                               "offload_receipts": self.receipts}
        if self.oldest_s is not None:
            out["offload_oldest_s"] = int(self.oldest_s)
        if self.last_error:
            out["offload_last_error"] = self.last_error[:200]
        return out


class _Stopped(Exception):
    """The thread was asked to stop mid-upload (the station keeps the durable part)."""


class Offloader:
    """Uploads pending segments to one station and logs its receipts (module docstring)."""

    def __init__(self, store: ReceiptTaker, *, device_id: str, data_dir: Path,
                 client: Callable[[], StationClient], station: str, max_rate: int = 0,
                 retry_s: float = 10.0, strained: Callable[[], bool] = lambda: False,
                 chunk_bytes: int = 1 << 20) -> None:
        self._store = store
        self._device_id = device_id
        self._make_client = client
        self._station = station
        self._retry_s = retry_s
        self._strained = strained
        self._chunk = chunk_bytes
        self._limiter = RateLimiter(max_rate)
        self._backoff = Backoff(retry_s)
        self._backlog = Backlog(store.log, data_dir)
        self._book = UploadBook(Path(data_dir) / "state")
        self._not_before: dict[int, float] = {}
        self._client: StationClient | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards the status fields below
        self._state = "idle"
        self._last_error: str | None = None
        self._bytes_sent = 0
        self._receipts = 0

    # --- any thread --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the ``offload`` thread."""
        self._thread = threading.Thread(target=self._run, name="offload", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread; an upload in flight stops at the next chunk (resumed next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._client is not None:
            self._client.close()
        self._set(state="stopped")

    def wake(self) -> None:
        """A segment was sealed: look at the backlog now rather than at the next poll."""
        self._wake.set()

    def status(self) -> OffloadStatus:
        """A consistent copy of the uploader's state."""
        summary = self._backlog.summary()
        with self._lock:
            return OffloadStatus(self._state, summary.segments, summary.bytes, summary.oldest_s,
                                 self._last_error, self._bytes_sent, self._receipts)

    # --- the offload thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self._step()
            except _Stopped:
                break
            except Exception as exc:  # a bug must not end offloading silently; it is reported
                log.exception("offload: unexpected failure")
                self._set(state="refused", error=f"internal: {exc}")
                wait = self._retry_s
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()

    def _step(self) -> float:
        """One unit of work; how long to wait before the next."""
        if self._strained():
            self._set(state="yielding")
            return _PRESSURE_POLL_S
        pending = self._backlog.refresh()
        now = time.monotonic()
        due = [p for p in pending if self._not_before.get(p.device_seq, 0.0) <= now]
        if not due:
            if not pending:
                self._set(state="idle")
            return _IDLE_POLL_S
        seg = due[0]
        try:
            self._offload(seg)
        except StationUnreachable as exc:
            self._set(state="unreachable", error=str(exc))
            return self._backoff.next()
        except StationRefused as exc:
            return self._refused(seg, exc)
        except (VerificationError, ReceiptRejected) as exc:  # wrong key, or another segment
            log.error("offload: receipt for segment %d refused: %s", seg.device_seq, exc)
            self._set(state="refused", error=f"receipt refused: {exc}")
            self._not_before[seg.device_seq] = now + self._retry_s
            return 0.0
        except (OSError, EvidenceError) as exc:  # the device's own files
            log.warning("offload: segment %d not readable yet: %s", seg.device_seq, exc)
            self._set(error=f"segment {seg.device_seq}: {exc}")
            self._not_before[seg.device_seq] = now + min(self._retry_s, 2.0)
            return 0.0
        self._backoff.reset()
        self._not_before.pop(seg.device_seq, None)
        return 0.0

    def _refused(self, seg: PendingSegment, exc: StationRefused) -> float:
        self._set(error=str(exc))
        if exc.status == 507:
            log.warning("offload: station store full; segment %d kept, retrying", seg.device_seq)
            self._set(state="station-full")
            return self._backoff.next()
        if exc.code in _RECOVERABLE:  # start that segment's upload afresh
            self._book.drop(seg.device_seq)
            return self._backoff.next()
        log.error("offload: station refused segment %d: %s", seg.device_seq, exc)
        self._set(state="refused")
        self._not_before[seg.device_seq] = time.monotonic() + self._retry_s
        return 0.0

    def _offload(self, seg: PendingSegment) -> None:
        manifest = seg.manifest.read_bytes()  # FileNotFoundError: the seal's rename is pending
        total = seg.media.stat().st_size
        client = self._connection()
        upload, offset = self._resume(client, seg)
        if upload is None:
            stored = client.receipt(self._device_id, seg.device_seq)  # finalised before a crash?
            if stored is not None:
                self._accept(seg, self._trusted(client, stored))
                return
            upload = client.create_upload(self._device_id, total, {"filename": seg.media.name})
            self._book.put(seg.device_seq, UploadRef(self._station, upload, seg.cipher_sha256))
            offset = 0
        self._set(state="uploading")
        if offset < total:
            self._send(client, upload, seg.media, offset, total)
        receipt = client.finalise(self._device_id, upload, manifest=manifest,
                                  entry=self._store.log.entry(seg.index), leaf_index=seg.index,
                                  log=self._store.log)
        self._accept(seg, receipt)

    def _resume(self, client: StationClient, seg: PendingSegment) -> tuple[str | None, int]:
        """The booked upload and the station's durable offset; (None, 0) if there is none."""
        ref = self._book.get(seg.device_seq, self._station, seg.cipher_sha256)
        if ref is None:
            return None, 0
        try:
            return ref.upload, client.status(ref.upload).offset
        except StationRefused as exc:
            if exc.status not in (404, 410):
                raise
        self._book.drop(seg.device_seq)
        return None, 0

    @staticmethod
    def _trusted(client: StationClient, receipt: Receipt) -> Receipt:
        if client.trusted_keys:
            receipt.verify(client.trusted_keys)
        return receipt

    def _send(self, client: StationClient, upload: str, media: Path, offset: int,
              total: int) -> None:
        with open(media, "rb") as f:
            while offset < total:
                if self._stop.is_set():
                    raise _Stopped
                while self._strained():
                    self._set(state="yielding")
                    if self._stop.wait(_PRESSURE_POLL_S):
                        raise _Stopped
                self._set(state="uploading")
                f.seek(offset)
                data = f.read(min(self._limiter.chunk(self._chunk), total - offset))
                if not data:
                    raise OSError(f"{media} shrank to {offset} bytes while being uploaded")
                pause = self._limiter.delay(len(data), time.monotonic())
                if pause > 0 and self._stop.wait(pause):
                    raise _Stopped
                try:
                    new = client.patch(upload, offset, data)
                except StationRefused as exc:
                    if exc.code != "offset-mismatch":
                        raise
                    new = client.status(upload).offset
                with self._lock:
                    self._bytes_sent += len(data)
                offset = new

    def _accept(self, seg: PendingSegment, receipt: Receipt) -> None:
        self._store.accept_receipt(receipt, origin={"via": "offload",
                                                    "station": receipt.station_id})
        self._book.drop(seg.device_seq)
        with self._lock:
            self._receipts += 1
            self._last_error = None
        log.info("offload: segment %d receipted by %s", seg.device_seq, receipt.station_id)

    def _connection(self) -> StationClient:
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _set(self, *, state: str | None = None, error: str | None = None) -> None:
        with self._lock:
            if state is not None:
                self._state = state
            if error is not None:
                self._last_error = error
