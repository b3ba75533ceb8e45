"""Which sealed segments may make room: the oldest *acknowledged* ones, and only those.

Evidence the back office has not acknowledged exists nowhere else, so it is never a candidate,
however full the disk. An acknowledged segment is a candidate only once it is older than the
retention minimum (an agency may want a local copy kept for a while even after upload). The
planner only chooses; the evidence store's ``evict()`` is the single code path that deletes,
and it logs each eviction as an event in the append-only log.

Ages come from the segment's sealing time (UTC seconds). A segment whose sealing time lies in
the future — the clock was stepped back — is treated as too young: when in doubt, keep.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EvictionPlan", "SealedSegment", "plan_eviction"]


@dataclass(frozen=True, slots=True)
class SealedSegment:
    """What the planner needs to know about one sealed segment."""

    path: Path
    size_bytes: int
    sealed_at: float  # UTC seconds since the epoch
    acknowledged: bool


@dataclass(frozen=True, slots=True)
class EvictionPlan:
    """Segments to evict, oldest first, and whether that is enough."""

    paths: tuple[Path, ...]
    freed_bytes: int
    satisfied: bool  # free space reaches the target after these evictions
    needed_bytes: int  # how much had to be freed (0: nothing to do)
    kept_unacknowledged: int  # unacknowledged segments that were not touched


def plan_eviction(
    segments: Sequence[SealedSegment],
    *,
    free_bytes: int,
    target_free_bytes: int,
    now: float,
    min_age_s: float = 0.0,
) -> EvictionPlan:
    """Choose the fewest oldest acknowledged segments that bring free space to the target.

    ``segments`` is in sealing order, oldest first (the store's sequence order). Nothing is
    chosen when free space already meets the target.
    """
    needed = max(0, target_free_bytes - free_bytes)
    unacknowledged = sum(1 for seg in segments if not seg.acknowledged)
    chosen: list[Path] = []
    freed = 0
    for seg in segments:
        if freed >= needed:
            break
        if not seg.acknowledged or now - seg.sealed_at < min_age_s or seg.sealed_at > now:
            continue
        chosen.append(seg.path)
        freed += seg.size_bytes
    return EvictionPlan(tuple(chosen), freed, freed >= needed, needed, unacknowledged)
