"""The GPS track of a segment that starts in the past (the pre-event buffer): pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.location import TrackRecorder, fix_position
from hw.gps import Fix

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
S = 1_000_000_000


def fix_at(second: float) -> Fix:
    """A 1 Hz fix received at ``second`` on the monotonic clock, stamped 0.2 s earlier."""
    return Fix(mode=3, utc=T0 + timedelta(seconds=second - 0.2), lat=31.23 + second * 1e-5,
               lon=121.47, alt_msl=10.0, received_mono_ns=int(second * S))


def test_preroll_segment_gets_the_fixes_since_its_start() -> None:
    """A press at t=40 s opens a segment whose pre-roll starts at t=30 s: it gets the fixes
    received since 30 s, and the newest fix at or before 30 s is its start position."""
    rec = TrackRecorder()
    for second in range(1, 41):
        rec.add(fix_at(second))
    rec.start_segment(30 * S)
    for second in range(41, 44):
        rec.add(fix_at(second))
    summary = rec.end_segment()
    assert summary.start == fix_position(fix_at(30))
    assert summary.track == tuple(fix_position(fix_at(s)) for s in range(31, 44))
    assert summary.end == fix_position(fix_at(43)) and rec.fixes == 13


def test_a_fix_is_never_in_two_segments_at_a_roll() -> None:
    """At a roll the controller opens the next segment a little after its boundary keyframe;
    fixes the previous track already holds are not replayed into the new one."""
    rec = TrackRecorder()
    rec.start_segment(0)
    for t in range(1, 11):
        rec.add(fix_at(t))
    first = rec.end_segment()
    rec.start_segment(int(9.5 * S))  # boundary at 9.5 s, processed after the 10 s fix
    rec.add(fix_at(11))
    second = rec.end_segment()
    assert fix_position(fix_at(10)) in first.track
    assert second.track == (fix_position(fix_at(11)),)
    assert second.start == fix_position(fix_at(9))


def test_a_fix_received_after_the_boundary_belongs_to_the_next_segment() -> None:
    """A loaded controller handles the roll late: the fix received at 10 s, after the boundary
    at 9.5 s, reached the closing track first. Closed with its end, the track gives it up, and
    the next segment -- and only it -- holds it: each track inside its segment's span."""
    rec = TrackRecorder()
    rec.start_segment(0)
    for t in range(1, 11):
        rec.add(fix_at(t))
    first = rec.end_segment(int(9.5 * S))
    assert rec.fixes == 9
    rec.start_segment(int(9.5 * S))
    rec.add(fix_at(11))
    second = rec.end_segment(int(12 * S))
    assert first.track == tuple(fix_position(fix_at(t)) for t in range(1, 10))
    assert first.end == fix_position(fix_at(9))
    assert second.track == (fix_position(fix_at(10)), fix_position(fix_at(11)))
    assert second.start == fix_position(fix_at(9)) and second.end == fix_position(fix_at(11))
    third_start = rec.end_segment(int(12 * S))  # closing again changes nothing
    assert third_start == second


def test_a_track_with_nothing_before_its_end_ends_where_it_started() -> None:
    """Every fix came after the end: the track is empty and its end is its start position."""
    rec = TrackRecorder()
    rec.add(fix_at(1))
    rec.start_segment(int(1.5 * S))
    rec.add(fix_at(2))
    summary = rec.end_segment(int(1.8 * S))
    assert summary.track == () and summary.start == summary.end == fix_position(fix_at(1))


def test_history_is_bounded_in_time_and_count() -> None:
    """Fixes older than ``history_s`` are forgotten; a 50 Hz flood is capped by count."""
    rec = TrackRecorder(history_s=10, history_max=100)
    for second in range(0, 100):
        rec.add(fix_at(second))
    rec.start_segment(50 * S)
    summary = rec.end_segment()  # only 89..99 s are remembered: nothing at or before 50 s
    assert rec.fixes == 11 and summary.start == fix_position(fix_at(89))
    flood = TrackRecorder(history_max=100)
    for i in range(10_000):
        flood.add(fix_at(i / 50))
    flood.start_segment(0)
    flood.end_segment()
    assert flood.fixes == 100
