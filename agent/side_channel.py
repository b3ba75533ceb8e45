"""The boundary between the evidence path and everything that only *hears about* evidence.

Sealing a segment is evidence work: the store signs it and appends the log, and a storage
failure there must fault the recorder. What happens *after* a successful seal -- queueing the
manifest and the checkpoint for the back office, writing ``published-checkpoint.json``,
waking the offloader, the LED and haptics, telemetry -- is a side channel. A side channel
that fails (a full outbox, a read-only state file, a bug) must never stop, fault or damage a
recording: an exception escaping from the seal's announcement used to leave the roll keyframe
unwritten (a GOP lost while the state said recording) or turn a sealed segment into a storage
fault and end the officer's recording.

:class:`SideChannel` is how the recorder and its store port call such a consumer: on the
calling (controller) thread, in order, inside a guard that logs and counts what the consumer
let escape and returns. A consumer that can retry (the checkpoint state file is rewritten at
the next seal) does so on its next call.

Why a guard on the controller thread and not a queue and thread per consumer: the consumers
(command set, fleet sync, feedback) are controller-thread objects without locks of their own;
a delivery thread would make them shared between threads. The order "segment sealed, then
recording stopped" is part of the contract, and the start feedback must reach the officer
before the first segment is opened. The file work that could make a consumer wait on a slow
card already runs on the segment worker.

Not thread-safe: owned by the thread that calls it (the controller thread).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Generic, ParamSpec

__all__ = ["SideChannel"]

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_LOG_EVERY_S = 10.0  # a consumer failing at every packet logs a line per 10 s, not 30 a second


class SideChannel(Generic[_P]):
    """Calls ``fn`` so that nothing it raises reaches the caller; failures are logged, counted."""

    def __init__(self, name: str, fn: Callable[_P, object], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._fn = fn
        self._clock = clock
        self._next_log = float("-inf")
        self._logged = 0
        self.calls = 0
        self.failures = 0
        self.last_error: str | None = None

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> bool:
        """Deliver; False (logged and counted) when the consumer raised."""
        self.calls += 1
        try:
            self._fn(*args, **kwargs)
        except Exception as exc:  # the boundary: a side channel's failure stays its own
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            now = self._clock()
            if now >= self._next_log:
                self._next_log = now + _LOG_EVERY_S
                log.error("%s failed (%d of %d calls so far, %d not logged; the recording is "
                          "unaffected): %s", self.name, self.failures, self.calls,
                          self.failures - self._logged - 1, self.last_error,
                          exc_info=self._logged == 0)
                self._logged = self.failures
            return False
        return True

    def status(self) -> dict[str, object]:
        """``{calls, failures, last_error}`` for the status snapshot."""
        return {"calls": self.calls, "failures": self.failures, "last_error": self.last_error}
