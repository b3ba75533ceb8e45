"""Helpers shared by the GPS tests: a recording sink and a bounded wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from hw.gps import Fix

__all__ = ["Collector", "wait_for"]


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until true or ``timeout``; the caller asserts the result."""
    deadline = time.monotonic() + timeout
    gate = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        gate.wait(0.02)
    return True


class Collector:
    """A sink that records fixes (thread-safe append; reads take a snapshot)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fixes: list[Fix] = []

    def __call__(self, fix: Fix) -> None:
        with self._lock:
            self._fixes.append(fix)

    @property
    def fixes(self) -> list[Fix]:
        with self._lock:
            return list(self._fixes)

    def positions(self) -> list[Fix]:
        return [f for f in self.fixes if f.has_position]
