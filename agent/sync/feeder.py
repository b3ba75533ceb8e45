"""Feeds Outbox rows to the broker through a bounded in-flight window and settles PUBACKs.

Rules it enforces:

* rows go out in seq order, at most ``max_inflight`` unacknowledged at a time;
* a row is deleted only after a PUBACK with a success reason code (< 0x80; 0x10 "no matching
  subscribers" counts as success); deletions are batched (a window's worth, or 0.2 s);
* a failure reason code (0x87 not authorized, 0x97 quota exceeded, …) is a delivery fault:
  counted, reported, the row kept, and feeding paused with exponential backoff; after the
  pause, feeding restarts from the oldest pending row, so the faulted row is retried first;
* on a new connection everything pending is sent again from the oldest row;
* a row the broker cannot take at all (bigger than its Maximum Packet Size) is *held*: reported
  once as a fault, kept in the outbox, and skipped, so it neither blocks the rows behind it nor
  makes the link loop; the next connection tries it again (the limit may have changed).

Locking: ``feed``, ``settle``, ``flush``, ``reset`` and ``deadline`` are called only on the
link thread. ``notify`` and ``counters`` may be called from any thread and touch only the
fields guarded by ``self._lock``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from paho.mqtt.reasoncodes import ReasonCode

from agent.sync.outbox import Outbox, OutboxMessage
from agent.sync.transport import Backoff
from hw.errors import SyncError

__all__ = ["HELD", "OutboxFeeder"]

_log = logging.getLogger(__name__)
_FAULT_RETRY_S: Final = (5.0, 300.0)
_FLUSH_AFTER_S: Final = 0.2

HELD: Final = -1
"""What a publish function returns for a row it must not send on this connection."""

Publish = Callable[[OutboxMessage], int | None]
"""Hands one row to the MQTT client; returns its message id, ``HELD``, or None if it was refused."""


class OutboxFeeder:
    """The in-flight window between an Outbox and one MQTT connection at a time."""

    def __init__(
        self,
        outbox: Outbox,
        *,
        max_inflight: int,
        on_fault: Callable[[int, str], None] | None = None,
        fault_retry_s: tuple[float, float] = _FAULT_RETRY_S,
    ) -> None:
        self._outbox = outbox
        self._max_inflight = max_inflight
        self._on_fault = on_fault
        self._lock = threading.Lock()
        self._more = True  # guarded by _lock: rows may exist beyond the cursor
        self._delivered = 0  # guarded by _lock
        self._faults = 0  # guarded by _lock
        # Link thread only.
        self._inflight: dict[int, int] = {}  # message id -> seq
        self._cursor = 0
        self._done: list[int] = []
        self._done_since = 0.0
        self._paused_until = 0.0
        self._backoff = Backoff(*fault_retry_s)
        self._faulted_seq: int | None = None

    def notify(self) -> None:
        """New rows were enqueued (any thread)."""
        with self._lock:
            self._more = True

    def counters(self) -> tuple[int, int]:
        """(delivered, faults) since start (any thread)."""
        with self._lock:
            return self._delivered, self._faults

    def set_window(self, max_inflight: int) -> None:
        """Resize the in-flight window (the broker's Receive Maximum, at each CONNACK)."""
        self._max_inflight = max(1, max_inflight)

    def hold(self, seq: int, why: str) -> None:
        """Count and report a row that cannot be sent on this connection; it stays queued."""
        with self._lock:
            self._faults += 1
        _log.error("outbox seq %d held: %s", seq, why)
        self._report(seq, why)

    @property
    def inflight(self) -> int:
        """Rows handed to the client and not yet settled."""
        return len(self._inflight)

    def reset(self) -> None:
        """Forget the previous connection: its in-flight rows will be sent again."""
        self.flush()
        self._inflight.clear()
        self._cursor = 0
        self._paused_until = 0.0
        self.notify()

    def deadline(self) -> float | None:
        """Monotonic time of the next timed action (end of a fault pause, pending deletes)."""
        times = [t for t in (self._paused_until,
                             self._done_since + _FLUSH_AFTER_S if self._done else 0.0) if t]
        return min(times) if times else None

    def feed(self, publish: Publish) -> None:
        """Hand as many rows to ``publish`` as the window allows."""
        if self._paused_until:
            if time.monotonic() < self._paused_until or self._inflight:
                return
            self._paused_until = 0.0
            self._cursor = 0  # the faulted row is the oldest pending: retry it first
            self.notify()
        space = self._max_inflight - len(self._inflight)
        with self._lock:
            more = self._more
        if not more or space <= 0:
            return
        rows = self._outbox.pending(space, after=self._cursor)
        if len(rows) < space:
            with self._lock:
                self._more = False
        for row in rows:
            mid = publish(row)
            if mid is None:
                self.notify()
                return
            self._cursor = row.seq
            if mid != HELD:
                self._inflight[mid] = row.seq

    def settle(self, mid: int, reason: ReasonCode) -> bool:
        """Apply a PUBACK (or QoS 0 send) result; False if ``mid`` is not an outbox row."""
        seq = self._inflight.pop(mid, None)
        if seq is None:
            return False
        if reason.is_failure:
            self._fault(seq, reason)
            return True
        if not self._done:
            self._done_since = time.monotonic()
        self._done.append(seq)
        with self._lock:
            self._delivered += 1
            self._more = True
        if seq == self._faulted_seq:
            self._faulted_seq = None
            self._backoff.reset()
        return True

    def flush(self, *, force: bool = True) -> None:
        """Delete the rows acknowledged since the last flush, in one transaction.

        Unforced, it waits until a window's worth is settled or ``_FLUSH_AFTER_S`` passed:
        each delete is an fsync, and a delete lost to a crash only causes a duplicate send.
        """
        if not self._done:
            return
        if not force and len(self._done) < self._max_inflight and (
            time.monotonic() - self._done_since < _FLUSH_AFTER_S
        ):
            return
        done, self._done = self._done, []
        try:
            self._outbox.mark_delivered(*done)
        except SyncError:
            _log.exception("outbox: could not delete %d delivered rows; they will be resent",
                           len(done))

    def _fault(self, seq: int, reason: ReasonCode) -> None:
        text = f"0x{reason.value:02X} {reason.getName()}"
        with self._lock:
            self._faults += 1
        self._faulted_seq = seq if self._faulted_seq is None else min(seq, self._faulted_seq)
        if not self._paused_until:
            delay = self._backoff.next_delay()
            self._paused_until = time.monotonic() + delay
            _log.error("broker rejected outbox seq %d (%s); retrying in %.0f s", seq, text, delay)
        self._report(seq, text)

    def _report(self, seq: int, text: str) -> None:
        if self._on_fault is not None:
            try:
                self._on_fault(seq, text)
            except Exception:  # a faulty observer must not stop delivery
                _log.exception("on_delivery_fault callback failed")
