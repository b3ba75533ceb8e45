"""The uploader thread: sealed segments leave the device oldest first; receipts come back.

Never the controller thread -- recording always wins. The thread (``offload``) owns the
station client, the backlog cursor and the upload book; other threads only call
:meth:`Offloader.wake` and :meth:`Offloader.status` (which copies fields under ``_lock``).

First, every ``key_rotation`` entry of the log the station has not taken is presented to it
(:mod:`.rotation_handover`): after a rotation the station verifies nothing the new key signed
until it has taken the old key's endorsement of it. Then, for each pending segment
(:mod:`.backlog`, derived from the log):

1. the upload URL is looked up in the book (:mod:`.book`); if the station still has it, the
   upload resumes from the station's durable offset (``HEAD``), else a new upload is made and
   written to the book *before* a byte is sent;
2. the ciphertext goes out in checksummed PATCHes (whole or not at all at the station), paced
   by ``offload.max_rate`` and paused while the camera pipeline is strained;
3. the segment is finalised with its manifest, log entry and proofs; the receipt is checked
   (names exactly this segment; signed by a configured station key) by the client and again by
   :meth:`EvidenceStore.accept_receipt`, which logs it as ``acknowledged`` with origin
   ``{"via": "offload", "station": <station id>}``. Only then is the book entry dropped.
   Before the receipt is logged, the segment's C2PA sidecar ``<stem>.c2pa`` (``[evidence]
   c2pa``), if it has one, is handed over (``PUT …/segments/<seq>/c2pa``, STATION-API §4a):
   after a crash the receipt is fetched again and the sidecar sent again (idempotent), so it
   reaches the station whenever the receipt does. A credential the station refuses (4xx) is
   logged and does not hold the segment back: the segment is stored and receipted either way.

Live mode (``offload.live``): when no sealed segment is owed, the open segment (the one whose
journal exists) is streamed as it grows -- a tus upload with ``Upload-Defer-Length``, PATCHed
every quarter second with the bytes the file holds, made durable on the device first (one
``fdatasync`` per poll) so the station's copy is always a prefix of what a crash leaves here.
At the seal the sealed path above finds the upload in the book, declares its length with the
tail and finalises it: the ciphertext goes over the link once.

Nothing here deletes anything. A station that is unreachable or full makes the thread back
off (up to ``offload.retry_s``); a segment the station refuses for another reason, or whose
receipt is refused, waits ``retry_s`` while the others go ahead.

What the uploader needs of the evidence store and what it reports of itself are declared in
:mod:`.offload_ports` (re-exported here).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.evidence.journal import JOURNAL_SUFFIX, Journal
from agent.evidence.receipt import Receipt
from agent.station.api_client import StationClient, StationRefused, StationUnreachable
from hw.errors import EvidenceError, ReceiptRejected, VerificationError

from .backlog import Backlog, PendingSegment
from .book import UploadBook, UploadRef
from .credential import hand_over_credential
from .offload_ports import OffloadStatus, ReceiptTaker
from .pacing import Backoff, RateLimiter
from .rotation_handover import RotationHandover

__all__ = ["OffloadStatus", "Offloader", "ReceiptTaker"]

log = logging.getLogger(__name__)

_IDLE_POLL_S = 1.0
_PRESSURE_POLL_S = 0.25
_LIVE_POLL_S = 0.25
_RECOVERABLE = ("upload-gone", "no-such-upload", "cipher-mismatch", "too-many-uploads")


class _Stopped(Exception):
    """The thread was asked to stop mid-upload (the station keeps the durable part)."""


class Offloader:
    """Uploads pending segments to one station and logs its receipts (module docstring)."""

    def __init__(self, store: ReceiptTaker, *, device_id: str, data_dir: Path,
                 client: Callable[[], StationClient], station: str, max_rate: int = 0,
                 retry_s: float = 10.0, strained: Callable[[], bool] = lambda: False,
                 chunk_bytes: int = 1 << 20, live: bool = False) -> None:
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
        self._live = live
        self._recordings = Path(data_dir) / "recordings"
        self._live_offsets: dict[int, int] = {}  # open segment → bytes the station holds
        self._live_seq: int | None = None  # the open segment being streamed
        self._book = UploadBook(Path(data_dir) / "state")
        self._rotations = RotationHandover(Path(data_dir) / "state", station=station,
                                           device_id=device_id, retry_s=retry_s,
                                           log=store.log)
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
        owed = self._rotations.due(self._backlog.rotations(), now)
        if owed:  # before any segment: the station must know the key that signs them
            try:
                problem = self._rotations.present(self._connection(), owed, now)
            except StationUnreachable as exc:
                self._set(state="unreachable", error=str(exc))
                return self._backoff.next()
            if problem:
                self._set(state="refused", error=problem)
        due = [p for p in pending if self._not_before.get(p.device_seq, 0.0) <= now]
        if not due:
            if self._live:
                return self._live_guarded(pending)
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
        if exc.status in (408, 423):  # a cut body the station has not given up on yet
            self._set(state="unreachable")
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
        upload, offset, deferred = self._resume(client, seg)
        if upload is not None and offset > total:  # a live upload ahead of a truncated seal
            log.warning("offload: segment %d: the station holds %d bytes of a live upload, the "
                        "sealed file has %d; uploading it afresh", seg.device_seq, offset, total)
            self._book.drop(seg.device_seq)
            upload = None
        if upload is None:
            stored = client.receipt(self._device_id, seg.device_seq)  # finalised before a crash?
            if stored is not None:
                self._accept(seg, self._trusted(client, stored), client)
                return
            upload = client.create_upload(self._device_id, total, {"filename": seg.media.name})
            self._book.put(seg.device_seq, UploadRef(self._station, upload, seg.cipher_sha256))
            offset = 0
        self._set(state="uploading")
        if deferred:  # a live upload: its length is known now that the segment is sealed
            offset = client.patch(upload, offset, b"", length=total) if offset == total else \
                self._send(client, upload, seg.media, offset, total, declare=True)
        if offset < total:
            self._send(client, upload, seg.media, offset, total)
        self._live_offsets.pop(seg.device_seq, None)
        receipt = client.finalise(self._device_id, upload, manifest=manifest,
                                  entry=self._store.log.entry(seg.index), leaf_index=seg.index,
                                  log=self._store.log)
        self._accept(seg, receipt, client)

    def _resume(self, client: StationClient,
                seg: PendingSegment) -> tuple[str | None, int, bool]:
        """The booked upload, the station's durable offset and whether its length is still
        deferred (a live upload); (None, 0, False) if there is none."""
        ref = self._book.get(seg.device_seq, self._station, seg.cipher_sha256)
        if ref is None:
            return None, 0, False
        try:
            st = client.status(ref.upload)
            return ref.upload, st.offset, st.length is None
        except StationRefused as exc:
            if exc.status not in (404, 410):
                raise
        self._book.drop(seg.device_seq)
        return None, 0, False

    # --- live mode ---------------------------------------------------------------------------
    def _live_guarded(self, pending: list[PendingSegment]) -> float:
        """:meth:`_live_step`, its failures judged as the sealed path's are (a live upload the
        station lost is started afresh; the sealed path finishes whatever is left)."""
        try:
            return self._live_step(pending)
        except StationUnreachable as exc:
            self._set(state="unreachable", error=str(exc))
            return self._backoff.next()
        except StationRefused as exc:
            self._set(error=str(exc))
            if exc.status == 507:
                self._set(state="station-full")
            elif (exc.code in _RECOVERABLE or exc.status in (404, 410)) and \
                    self._live_seq is not None:
                self._book.drop(self._live_seq)
                self._live_offsets.pop(self._live_seq, None)
            return self._backoff.next()
        except (OSError, EvidenceError) as exc:  # the open file went away (sealed, abandoned)
            log.debug("offload: live segment not readable: %s", exc)
            return _LIVE_POLL_S

    def _live_step(self, pending: list[PendingSegment]) -> float:
        """Stream the open segment's durable bytes (``offload.live``); sealed ones go first."""
        open_seg = self._open_segment({p.device_seq for p in pending})
        if open_seg is None:
            if not pending:
                self._set(state="idle")
            return _LIVE_POLL_S
        seq, media = open_seg
        self._live_seq = seq
        client = self._connection()
        ref = self._book.get(seq, self._station, None)
        if ref is None:
            upload = client.create_upload(self._device_id, None, {"filename": media.name})
            ref = UploadRef(self._station, upload, "", live=True)
            self._book.put(seq, ref)
            self._live_offsets[seq] = 0
        offset = self._live_offsets.get(seq)
        if offset is None:
            offset = client.status(ref.upload).offset
        with open(media, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size <= offset:
                self._live_offsets[seq] = offset
                return _LIVE_POLL_S
            # Only bytes durable on the device may leave it: the station's copy must stay a
            # prefix of what a crash leaves here. One fdatasync per poll makes everything up
            # to ``size`` durable (the sink only appends whole age chunks).
            os.fdatasync(f.fileno())
        self._live_offsets[seq] = self._send(client, ref.upload, media, offset, size)
        return 0.0

    def _open_segment(self, sealed_pending: set[int]) -> tuple[int, Path] | None:
        """The oldest segment being written (its journal exists), or None."""
        found: list[tuple[int, Path]] = []
        for path in self._recordings.glob(f"*/*{JOURNAL_SUFFIX}"):
            try:
                journal = Journal.read(path)
            except (OSError, EvidenceError):  # sealed (and removed) while we looked
                continue
            if journal.device_seq not in sealed_pending and journal.media.exists():
                found.append((journal.device_seq, journal.media))
        return min(found) if found else None

    @staticmethod
    def _trusted(client: StationClient, receipt: Receipt) -> Receipt:
        if client.trusted_keys:
            receipt.verify(client.trusted_keys)
        return receipt

    def _send(self, client: StationClient, upload: str, media: Path, offset: int,
              total: int, *, declare: bool = False) -> int:
        """Send ``media[offset:total]`` (``declare``: the deferred length with the first
        PATCH); the station's durable offset after it."""
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
                with self._lock:  # counted as they go out: a cut costs what it re-sends
                    self._bytes_sent += len(data)
                try:
                    new = client.patch(upload, offset, data, length=total if declare else None)
                    declare = False
                except StationRefused as exc:
                    if exc.code != "offset-mismatch":
                        raise
                    new = client.status(upload).offset
                offset = new
        return offset

    def _accept(self, seg: PendingSegment, receipt: Receipt, client: StationClient) -> None:
        # The store writes a credential under its lock right after the segment's log leaf:
        # asking it anything under that lock waits until a credential being written is there.
        self._store.leaf_index(seg.device_seq)
        problem = hand_over_credential(client, self._device_id, seg.device_seq, seg.media)
        if problem:
            self._set(error=problem)
        self._store.accept_receipt(receipt, origin={"via": "offload",
                                                    "station": receipt.station_id})
        self._book.drop(seg.device_seq)
        self._backlog.refresh()  # status shows the segment gone as soon as its receipt is in
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
