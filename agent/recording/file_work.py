"""The recorder's file work on its way to the segment worker, and its outcomes on the way back.

The state machine (:mod:`agent.recording.recorder`) decides: which segment a packet goes to,
when a segment is synced, sealed, when a stop or fault is announced. This module hands what
it decided to the worker (:mod:`agent.recording.segment_worker`) in that order -- routed
packets batched per tick, fsyncs, seals, the events that must follow them -- and turns what
comes back into the two outcomes the state machine reacts to: a fault reason (storage failed)
or a sealed segment's manifest. Kept apart so the recorder reads as its rules, and the
hand-off's own rules (one wake-up per batch, a failed segment's later writes skipped, a
segment whose muxer cannot close still sealed, flagged ``write_error``) read in one place.

Threads: every method runs on the controller thread; the jobs built here run on the worker
and touch only a segment's writer, its ``failed`` mark and the port's file work.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from agent.recording.packets import MediaPacket
from agent.recording.segment import SegmentPort
from agent.recording.segment_state import RoutedSegment, write_batch
from agent.recording.segment_worker import Worker
from hw.errors import EvidenceError, RecorderError, StorageError

__all__ = ["FileWork"]

log = logging.getLogger(__name__)


class FileWork:
    """Hands the recorder's decided file work to its worker, in order; reports failures to
    ``fault`` (a reason) on the controller thread."""

    def __init__(self, worker: Worker, *, fault: Callable[[str], None]) -> None:
        self._worker = worker
        self._fault = fault
        self._writes: list[tuple[RoutedSegment, MediaPacket]] = []  # routed, not yet handed over

    def write(self, seg: RoutedSegment, packet: MediaPacket) -> None:
        """Queue a routed packet for ``seg``; it reaches the worker with the next batch."""
        self._writes.append((seg, packet))

    def flush(self) -> None:
        """Hand the packets routed since the last flush to the worker as one job.

        Packets are batched so the worker thread wakes about ten times a second (each
        recorder tick, and before any other file work) instead of once per packet -- on a
        small board each wake-up costs more than writing the packet. The batch holds at most
        a tick of media: what a batch holds back is at risk in a crash (the killed-process
        series, tests/recording/test_crash.py, loses ~0.4 s more per kill with 0.3 s batches
        and the audio held as long), so it stays a tick."""
        if not self._writes:
            return
        batch, self._writes = self._writes, []
        self._worker.submit(functools.partial(write_batch, batch), self._failed, errors_only=True)

    def io(self, seg: RoutedSegment, action: Callable[[], None]) -> None:
        """Run a write or fsync of ``seg`` on the worker; a storage failure faults."""

        def job() -> None:
            if seg.failed:
                return  # its sink is poisoned; the fault is already on its way
            try:
                action()
            except Exception:
                seg.failed = True
                raise

        self.submit(job, self._failed, errors_only=True)

    def seal(self, seg: RoutedSegment, port: SegmentPort,
             announce: Callable[[dict[str, Any] | None], None]) -> None:
        """Seal ``seg`` (its world already read: ``seg.sealing``) on the worker, then hand the
        manifest the port announced to ``announce`` (``None``: the announcement broke; the
        segment is sealed all the same). If storage fails, the segment is left to crash
        recovery and the recorder faults."""
        finish, late_flags = seg.sealing, seg.flags[seg.flags_at_end:]
        writer, number = seg.writer, seg.seq

        def work() -> Any:
            extra: list[str] = list(late_flags)
            try:
                stats = writer.close()
            except (StorageError, OSError, RecorderError) as exc:
                stats = writer.stats
                extra.append("write_error")
                log.error("closing segment %s failed: %s", number, exc)
            return finish(stats, extra)

        def done(result: Any, error: BaseException | None) -> None:
            if isinstance(error, (StorageError, OSError, EvidenceError)):
                log.error("sealing segment %s failed: %s (its journal is kept for recovery)",
                          number, error)
                port.abandon(seg.handle)
                kind = "evidence" if isinstance(error, EvidenceError) else "storage"
                self._fault(f"{kind}: {error}")
                return
            if error is not None:
                raise error
            try:
                manifest: dict[str, Any] | None = port.sealed(result)
            except Exception:  # the port's announcement broke its contract; the seal stands
                log.exception("segment %s is sealed; announcing it failed", number)
                manifest = None
            announce(manifest)

        self.submit(work, done)

    def then(self, announce: Callable[[], object]) -> None:
        """Call ``announce`` (controller thread) once the file work submitted before is done:
        a stop or fault is announced after the seals it caused."""
        def done(_result: Any, _error: BaseException | None) -> None:
            announce()

        self.submit(lambda: None, done)

    def submit(self, job: Callable[[], Any], done: Callable[[Any, BaseException | None], None],
               *, errors_only: bool = False) -> None:
        """Queue file work behind the packets routed so far (the worker runs jobs in order)."""
        self.flush()
        self._worker.submit(job, done, errors_only=errors_only)

    def poll(self) -> None:
        """Take in the outcomes of finished file work (controller thread, every loop)."""
        self._worker.poll()

    def drain(self) -> None:
        """Wait for all file work queued so far and take in its outcomes (shutdown)."""
        self.flush()
        self._worker.drain()

    @property
    def backlog(self) -> int:
        """File work (packets, fsyncs, seals) not yet done by the worker."""
        return self._worker.backlog + len(self._writes)

    def _failed(self, _result: Any, error: BaseException | None) -> None:
        if isinstance(error, (StorageError, OSError)):
            self._fault(f"storage: {error}")
        elif isinstance(error, RecorderError):
            self._fault(str(error))
        elif error is not None:
            raise error
