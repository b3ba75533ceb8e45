"""What the recorder's state machine (:mod:`agent.recording.recorder`) keeps and hands to its worker:
its states, the tally of what it sealed, the segments packets are routed to, and the batched
write job; and :class:`OpenDeferred`, the one answer a port may give instead of a segment.

Threads: a :class:`RoutedSegment` is the controller's, except ``writer`` and ``failed``, which
only the segment worker touches (through :func:`write_batch` and the seal job).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from agent.recording.packets import MediaPacket
from agent.recording.segment import SegmentPort, SegmentWriter

__all__ = ["OpenDeferred", "RecorderState", "RoutedSegment", "SealedTally", "prepare_seal",
           "write_batch"]


class OpenDeferred(Exception):
    """Raised by a port's ``open_segment``: no segment at this keyframe, ask at a later one.

    The recorder stays recording with no segment open: the media until the port accepts is
    not recorded (the segment before keeps its audio tail), and each following keyframe (each
    audio packet, audio-only) asks again. Unlike a storage error it is no fault. The bench's
    lost-media fault is built on it (:mod:`agent.recording.fault_ports`), so the recorder's
    rules stay the ones a real device runs."""


class RecorderState(StrEnum):
    """The recorder's states; a ``str``, so ``state == "recording"`` and JSON keep working."""

    STANDBY = "standby"
    RECORDING = "recording"
    STOPPING = "stopping"
    FAULT = "fault"


@dataclass
class SealedTally:
    """What the recorder sealed since the process started: how many, and the last manifest.

    A weeks-long uptime seals tens of thousands of segments (~2.5 kB of manifest each); only
    the count and the newest are ever read, so only they are kept. ``len()`` is the count."""

    count: int = 0
    last: dict[str, Any] | None = None

    def add(self, manifest: dict[str, Any] | None) -> None:
        """Count one sealed segment (``None``: its manifest could not be announced)."""
        self.count += 1
        if manifest is not None:
            self.last = manifest

    def __len__(self) -> int:
        return self.count


@dataclass
class RoutedSegment:
    """The controller's view of a segment packets are routed to (the store's file and journal
    are its ``handle``: :class:`agent.evidence.store.OpenSegment`)."""

    handle: Any
    writer: SegmentWriter
    seq: int
    start_mono_us: int
    flags: list[str]
    bookmarks: list[dict[str, Any]] = field(default_factory=list)
    boundary_us: int | None = None  # set when the next segment took over
    closing_since_us: int | None = None
    routed_end_us: int | None = None  # end of the last frame routed here (controller's view)
    routed_audio_end_us: int | None = None  # end of the last audio packet routed here
    failed: bool = False  # a write failed (set by the worker); later writes are skipped
    # The manifest's world (matter, GPS track, clock) read when the segment ended at its
    # roll, with how many flags it had then: sealed later, it still says what held then.
    sealing: Any = None
    flags_at_end: int = 0


def write_batch(batch: Sequence[tuple[RoutedSegment, MediaPacket]]) -> None:
    """Write routed packets in order (segment worker). A segment whose write failed is marked
    and skipped from then on; the other segment's packets are still written; the first
    failure is raised at the end, for the recorder to fault on."""
    first: Exception | None = None
    for seg, packet in batch:
        if seg.failed:
            continue  # its sink is poisoned; the fault is already on its way
        try:
            seg.writer.write(packet)
        except Exception as exc:
            seg.failed = True
            first = first or exc
    if first is not None:
        raise first


def prepare_seal(port: SegmentPort, seg: RoutedSegment) -> None:
    """Read the manifest's world (matter, GPS track, clock) for ``seg`` now (controller
    thread). The recorder does it at a roll, where the segment ends: a matter changed while
    its audio tail still arrives belongs to the next segment, not to this one."""
    end = seg.boundary_us if seg.boundary_us is not None else seg.routed_end_us
    seg.sealing = port.seal_later(seg.handle, end_mono_us=end if end is not None
                                  else seg.start_mono_us, flags=list(seg.flags),
                                  bookmarks=list(seg.bookmarks))
    seg.flags_at_end = len(seg.flags)
