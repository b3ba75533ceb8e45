"""Helpers shared by the GPS tests: a recording sink and a bounded wait."""

from __future__ import annotations

import threading

from agent.testing import wait_for
from hw.gps import Fix

__all__ = ["Collector", "wait_for"]


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
