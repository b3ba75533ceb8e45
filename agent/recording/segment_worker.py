"""The segment worker: the thread that does a recording's file work, so the controller never waits.

Muxing, hashing, encrypting and writing a segment cost about 0.2 ms per packet, an fsync 5-50
ms on a microSD card, a seal three fsyncs. A press hands the whole pre-event buffer (30 s at
8 Mbit/s: ~2,300 packets, 27 MB) to storage at once; done on the controller thread it held
the start feedback back by ~0.4 s and left every later event queued behind it. The controller
therefore only *decides* (which segment a packet belongs to, when to roll, when to seal) and
submits the work here, in order; results come back through :meth:`SegmentWorker.poll`, which
the controller calls, so every state change still happens on the controller thread.

Ownership: the worker thread owns every :class:`agent.recording.segment.SegmentWriter` and evidence sink
of the recording (it is the only caller of ``write``/``sync``/``close`` and of the port's
file work); the controller owns everything else, including the ``done`` callbacks, which run
in :meth:`poll` on the controller thread in submission order.

Locking: ``_jobs`` (a ``queue.SimpleQueue``) carries work to the thread, ``_done`` (a
``collections.deque``, whose append/popleft are atomic) carries results back; no lock is
taken per job: the backlog is two counters, each written by one thread only (submitted by
the controller, finished by the worker), and :meth:`drain` waits on a marker job of its own.
:class:`InlineWorker` runs everything at once on the caller's thread (an instant,
single-threaded recorder for rule tests).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["InlineWorker", "SegmentWorker", "Worker"]

log = logging.getLogger(__name__)

Done = Callable[[Any, BaseException | None], None]


class Worker(Protocol):
    """Where the recorder's file work runs."""

    def submit(self, job: Callable[[], Any], done: Done | None = None, *,
               errors_only: bool = False) -> None:
        """Run ``job`` after everything submitted before; ``done(result, error)`` later runs
        on the controller thread (in :meth:`poll`), in submission order -- with
        ``errors_only``, only if the job raised (per-packet writes)."""
        ...

    def poll(self) -> None:
        """Run the ``done`` callbacks of finished jobs (controller thread)."""
        ...

    def drain(self) -> None:
        """Wait until every submitted job finished, then :meth:`poll` (controller thread)."""
        ...

    @property
    def backlog(self) -> int:
        """Jobs submitted and not yet finished."""
        ...


class InlineWorker:
    """Runs each job at once on the caller's thread (same results, no concurrency)."""

    backlog = 0

    def submit(self, job: Callable[[], Any], done: Done | None = None, *,
               errors_only: bool = False) -> None:
        """Run ``job`` now and hand its outcome to ``done`` now."""
        try:
            result, error = job(), None
        except Exception as exc:  # handed to done, exactly like the threaded worker does
            result, error = None, exc
        if done is not None and (error is not None or not errors_only):
            done(result, error)
        elif error is not None:
            raise error

    def poll(self) -> None:
        """Nothing is ever pending."""

    def drain(self) -> None:
        """Nothing is ever pending."""


class SegmentWorker:
    """One thread running file jobs in order; outcomes return through :meth:`poll`."""

    def __init__(self, *, name: str = "segment-writer",
                 wake: Callable[[], None] | None = None) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Done | None, bool] | None] = (
            queue.SimpleQueue())
        self._done: deque[tuple[Done, Any, BaseException | None]] = deque()
        self._submitted = 0  # written by the submitting (controller) thread only
        self._finished = 0  # written by the worker thread only
        self._wake = wake
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def backlog(self) -> int:
        """Jobs submitted and not yet finished."""
        return self._submitted - self._finished

    def set_wake(self, wake: Callable[[], None]) -> None:
        """Call ``wake()`` (any thread) whenever a finished job has a callback to run."""
        self._wake = wake

    def submit(self, job: Callable[[], Any], done: Done | None = None, *,
               errors_only: bool = False) -> None:
        """Queue ``job``; never blocks."""
        self._submitted += 1
        self._jobs.put((job, done, errors_only))

    def poll(self) -> None:
        """Run finished jobs' callbacks, oldest first (controller thread)."""
        while self._done:
            done, result, error = self._done.popleft()
            done(result, error)

    def drain(self) -> None:
        """Block until every job submitted so far ran, then run the callbacks (controller
        thread): jobs run in order, so a marker job queued now runs after all of them."""
        if self._submitted != self._finished:
            reached = threading.Event()
            self.submit(reached.set)
            reached.wait()
        self.poll()

    def close(self) -> None:
        """Finish the queued jobs and end the thread (their callbacks need :meth:`poll`)."""
        self._jobs.put(None)
        self._thread.join(timeout=60)

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, done, errors_only = item
            try:
                result, error = job(), None
            except Exception as exc:  # a failed job is reported to its owner, never lost
                result, error = None, exc
                if done is None:
                    log.exception("segment worker: a job without a callback failed")
            report = done is not None and (error is not None or not errors_only)
            if report:
                assert done is not None
                self._done.append((done, result, error))
            self._finished += 1
            if report and self._wake is not None:
                self._wake()
