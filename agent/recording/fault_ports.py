"""Bench faults, injected around the recorder's ports and never inside its state machine.

A lab proves that its bench catches what a recorder can get wrong by running a simulated unit
built with a fault (``bodycam bench --fault gap-1s`` sets ``[sim] boundary_gap_ms``). Each
fault here wraps a port the composition root hands the recorder, so the recorder under test
runs the very rules a real device runs, and each fault is tested on its own, instantly,
against fakes (``tests/recording/test_fault_ports.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from agent.recording.segment import SegmentPort, SegmentStats
from agent.recording.segment_state import OpenDeferred

__all__ = ["BoundaryGapPort"]

log = logging.getLogger(__name__)


class BoundaryGapPort:
    """A :class:`~agent.recording.segment.SegmentPort` that loses ``gap_us`` of media after
    every segment roll, so a bench can prove it measures media missing between segments.

    A roll is the open of a recording's segment ``seq >= 1``, at the boundary keyframe. The
    port defers that open (:class:`OpenDeferred`) at every keyframe before the boundary plus
    ``gap_us``; the recorder records nothing meanwhile, and the next segment starts at the
    first keyframe at or after it -- ``gap_us`` and up to a GOP more are missing, the segment
    before ends at the boundary with its audio tail. A recording's first segment opens at
    once: the pre-event buffer is never cut. Everything else is forwarded unchanged."""

    def __init__(self, port: SegmentPort, *, gap_us: int) -> None:
        self._port = port
        self._gap_us = gap_us
        self._roll: tuple[str, int] | None = None  # (recording, seq) of the deferred roll
        self._resume_us = 0
        self.rolls_cut = 0  # rolls that lost media

    def open_segment(self, *, recording_id: str, seq: int, start_mono_us: int,
                     flags: list[str]) -> Any:
        """Defer a roll's open until ``gap_us`` after its boundary; open the rest at once."""
        if seq > 0 and self._gap_us > 0:
            if self._roll != (recording_id, seq):  # the boundary keyframe of a new roll
                self._roll, self._resume_us = (recording_id, seq), start_mono_us + self._gap_us
                self.rolls_cut += 1
                log.warning("bench fault: media lost for %d ms from the roll to segment %d",
                            self._gap_us // 1000, seq)
            if start_mono_us < self._resume_us:
                raise OpenDeferred(f"bench gap until {self._resume_us} us")
        return self._port.open_segment(recording_id=recording_id, seq=seq,
                                       start_mono_us=start_mono_us, flags=flags)

    def sync(self, handle: Any) -> None:
        """Forwarded."""
        self._port.sync(handle)

    def seal(self, handle: Any, *, stats: SegmentStats, end_mono_us: int, flags: list[str],
             bookmarks: list[dict[str, Any]]) -> dict[str, Any]:
        """Forwarded."""
        return self._port.seal(handle, stats=stats, end_mono_us=end_mono_us, flags=flags,
                               bookmarks=bookmarks)

    def seal_later(self, handle: Any, *, end_mono_us: int, flags: list[str],
                   bookmarks: list[dict[str, Any]]) -> Callable[[SegmentStats, list[str]], Any]:
        """Forwarded."""
        return self._port.seal_later(handle, end_mono_us=end_mono_us, flags=flags,
                                     bookmarks=bookmarks)

    def sealed(self, result: Any) -> dict[str, Any]:
        """Forwarded."""
        return self._port.sealed(result)

    def abandon(self, handle: Any) -> None:
        """Forwarded."""
        self._port.abandon(handle)
