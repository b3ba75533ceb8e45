"""The life cycle the simulated cameras share: one producer thread, a stall stimulus, counters.

A simulated camera differs from another only in how it makes its next access unit (libx264
from synthetic frames, or a recorded clip); starting, stopping, stalling like picamera2, and
recording why the thread died are the same, so they are written once here.

Locking: ``_lock`` guards ``_stalled`` and ``_wedged`` (set by stimuli from any thread, read by the producer);
the counters are written only by the producer thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from hw.camera import FrameSink, VideoFormat
from hw.errors import CameraError

__all__ = ["ThreadedCamera"]


class ThreadedCamera:
    """Base of the simulated cameras: subclasses implement :meth:`_produce`."""

    _thread_name = "camera"

    def __init__(self, fmt: VideoFormat, *,
                 mono_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self._format = fmt
        self._mono_ns = mono_ns
        self._lock = threading.Lock()
        self._stalled = False
        self._wedged = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._delivered = 0
        self._dropped = 0
        self._error: BaseException | None = None

    # --- contract ---------------------------------------------------------------------------
    @property
    def format(self) -> VideoFormat:
        """The encoded stream's format."""
        return self._format

    @property
    def frames_delivered(self) -> int:
        """Access units handed to the sink."""
        return self._delivered

    @property
    def frames_dropped(self) -> int:
        """Frames that were due but not delivered (injected drops, a late thread, a stall)."""
        return self._dropped

    @property
    def error(self) -> BaseException | None:
        """The exception that ended the producer thread, if any."""
        return self._error

    def start(self, sink: FrameSink) -> None:
        """Start the producer thread."""
        if self._thread is not None and self._thread.is_alive():
            raise CameraError("camera already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,),
                                        name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop producing; returns after the last sink call."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def restart(self, sink: FrameSink) -> None:
        """Stop, end a simulated stall (as a reopen of picamera2 ends a real one), start again;
        a wedged camera (:meth:`wedge`) stays dark through it."""
        self.stop()
        with self._lock:
            self._stalled = self._wedged
        self.start(sink)

    def set_officer(self, officer_id: str) -> None:
        """No overlay to change here (a subclass that draws one overrides this)."""

    # --- stimuli ----------------------------------------------------------------------------
    def stall(self) -> None:
        """Stop delivering frames while staying 'alive' (picamera2's silent stall)."""
        with self._lock:
            self._stalled = True

    def wedge(self) -> None:
        """A stall that survives restarts (a sensor gone from the bus): only :meth:`resume`
        ends it, so the supervisor's escalation past restarting can be exercised."""
        with self._lock:
            self._stalled = self._wedged = True

    def resume(self) -> None:
        """End a stall (a wedge too)."""
        with self._lock:
            self._stalled = self._wedged = False

    # --- internals --------------------------------------------------------------------------
    def _run(self, sink: FrameSink) -> None:
        try:
            self._produce(sink)
        except BaseException as exc:  # the thread must not die silently: record it for health
            self._error = exc
            raise

    def _produce(self, sink: FrameSink) -> None:
        """Deliver access units to ``sink`` until ``_stop`` is set."""
        raise NotImplementedError
