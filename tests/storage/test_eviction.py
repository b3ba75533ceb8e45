"""The eviction planner: oldest acknowledged first, never an unacknowledged segment."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from agent.storage.eviction import SealedSegment, plan_eviction
from agent.storage.space_policy import StoragePolicy
from hw.storage import StorageReading

NOW = 1_800_000_000.0


def seg(i: int, *, ack: bool, size: int = 100, age_s: float = 86_400) -> SealedSegment:
    return SealedSegment(Path(f"rec/seg-{i:04d}.mp4.age"), size, NOW - age_s, ack)


def test_oldest_acknowledged_first_and_only_as_many_as_needed() -> None:
    """Unacknowledged segments are skipped; the fewest oldest acknowledged ones are chosen."""
    segments = [seg(0, ack=False), seg(1, ack=True), seg(2, ack=True), seg(3, ack=True)]
    plan = plan_eviction(segments, free_bytes=50, target_free_bytes=220, now=NOW)
    assert plan.paths == (segments[1].path, segments[2].path)
    assert plan.freed_bytes == 200 and plan.needed_bytes == 170 and plan.satisfied
    assert plan.kept_unacknowledged == 1


def test_nothing_to_do_when_space_suffices() -> None:
    """Free space at the target means no eviction at all."""
    plan = plan_eviction([seg(0, ack=True)], free_bytes=500, target_free_bytes=500, now=NOW)
    assert plan.paths == () and plan.satisfied and plan.needed_bytes == 0


def test_retention_minimum_and_clock_steps_protect_segments() -> None:
    """Too young, or sealed "in the future" after a clock step: kept."""
    segments = [seg(0, ack=True, age_s=3600), seg(1, ack=True, age_s=-600),
                seg(2, ack=True, age_s=10 * 86_400)]
    plan = plan_eviction(segments, free_bytes=0, target_free_bytes=300, now=NOW,
                         min_age_s=7 * 86_400)
    assert plan.paths == (segments[2].path,)
    assert not plan.satisfied


def test_a_disk_full_of_unacknowledged_evidence_evicts_nothing() -> None:
    """However full the disk, unacknowledged evidence stays."""
    segments = [seg(i, ack=False, size=10**9) for i in range(50)]
    plan = plan_eviction(segments, free_bytes=0, target_free_bytes=10**12, now=NOW)
    assert plan.paths == () and not plan.satisfied and plan.kept_unacknowledged == 50


def test_policy_targets_reserve_plus_one_segment() -> None:
    """The policy frees the reserve plus one segment of slack."""
    policy = StoragePolicy(segment_s=10, reserve_segments=2, headroom=1.0)
    segments = [seg(i, ack=True, size=1000) for i in range(10)]
    plan = policy.plan_eviction(segments, StorageReading(10**6, 500), 100.0, now=NOW)
    assert plan.needed_bytes == 3000 - 500
    assert len(plan.paths) == 3


segments_strategy = st.lists(
    st.builds(SealedSegment,
              path=st.integers(0, 10**6).map(lambda n: Path(f"s{n}")),
              size_bytes=st.integers(0, 10**9),
              sealed_at=st.floats(NOW - 10**7, NOW + 10**4, allow_nan=False),
              acknowledged=st.booleans()),
    max_size=60, unique_by=lambda s: s.path)


@given(segments_strategy, st.integers(0, 10**10), st.integers(0, 10**10),
       st.floats(0, 10**6, allow_nan=False))
def test_never_chooses_unacknowledged_or_young(segments: list[SealedSegment], free: int,
                                               target: int, min_age: float) -> None:
    """For any disk: only acknowledged, old-enough segments, in the given order, no more than needed."""
    plan = plan_eviction(segments, free_bytes=free, target_free_bytes=target, now=NOW,
                         min_age_s=min_age)
    by_path = {s.path: s for s in segments}
    chosen = [by_path[p] for p in plan.paths]
    assert all(s.acknowledged for s in chosen)
    assert all(NOW - s.sealed_at >= min_age and s.sealed_at <= NOW for s in chosen)
    order = [s.path for s in segments]
    assert [order.index(p) for p in plan.paths] == sorted(order.index(p) for p in plan.paths)
    assert plan.freed_bytes == sum(s.size_bytes for s in chosen)
    if chosen:  # dropping the last choice would not have been enough
        assert plan.freed_bytes - chosen[-1].size_bytes < plan.needed_bytes
    eligible = sum(s.size_bytes for s in segments
                   if s.acknowledged and NOW - s.sealed_at >= min_age and s.sealed_at <= NOW)
    assert plan.satisfied == (min(eligible, plan.freed_bytes) >= plan.needed_bytes
                              or plan.freed_bytes >= plan.needed_bytes)
