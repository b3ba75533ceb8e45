"""The storage rules at their edges: exact thresholds, defaults, refusals and the words of a
refusal (agent/storage/space_policy.py, agent/storage/eviction.py). Instant: no disk, no clock."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from agent.storage.eviction import SealedSegment, plan_eviction
from agent.storage.space_policy import FULL, OK, WARN, BitrateMeter, StoragePolicy
from hw.storage import StorageReading

NOW = 1_800_000_000.0


def exactly(message: str) -> str:
    """A ``match=`` pattern for exactly ``message``."""
    return f"^{re.escape(message)}$"


def reading(free: int, *, read_only: bool = False) -> StorageReading:
    return StorageReading(total_bytes=10**12, free_bytes=free, read_only=read_only)


def seg(i: int, *, size: int = 100, sealed_at: float = NOW - 86_400,
        ack: bool = True) -> SealedSegment:
    return SealedSegment(Path(f"rec/seg-{i:04d}.mp4.age"), size, sealed_at, ack)


# -- BitrateMeter ------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{"nominal_bps": 0}, {"nominal_bps": -1},
                                {"nominal_bps": 1, "tau_s": 0},
                                {"nominal_bps": 1, "min_interval_s": 0}])
def test_meter_refuses_a_zero_or_negative_parameter(kw: dict[str, float]) -> None:
    """Each of rate, time constant and interval must be positive, and the error says so."""
    with pytest.raises(ValueError,
                       match=exactly("nominal_bps, tau_s and min_interval_s must be > 0")):
        BitrateMeter(**kw)


def test_meter_accepts_small_positive_parameters() -> None:
    """Fractions are fine: a trickle of a rate, a sub-second interval and time constant."""
    meter = BitrateMeter(0.5, tau_s=0.5, min_interval_s=0.5)
    assert meter.rate == 0.5


def test_meter_default_interval_is_one_second_and_default_tau_thirty() -> None:
    """With defaults a sample is taken once a full second has passed, and the second sample
    moves the rate by exactly 1 - exp(-1/30) of the difference."""
    meter = BitrateMeter(123.0)
    meter.add(999, 0.0)        # starts the clock only
    meter.add(400, 0.999)
    assert not meter.measured
    meter.add(600, 1.0)
    assert meter.measured and meter.rate == pytest.approx(1000.0, rel=1e-12)
    meter.add(3000, 2.0)
    assert meter.rate == pytest.approx(1000.0 + (1 - math.exp(-1 / 30)) * 2000.0, rel=1e-12)


def test_meter_sample_at_exactly_the_interval() -> None:
    """An interval of exactly ``min_interval_s`` is long enough for a sample; the bytes of a
    sample are not counted again in the next one."""
    meter = BitrateMeter(1.0, tau_s=1e-9, min_interval_s=2.0)
    meter.add(0, 10.0)
    meter.add(800, 12.0)
    assert meter.rate == pytest.approx(400.0, rel=1e-12)
    meter.add(200, 14.0)  # tau ~0: the rate is the newest sample
    assert meter.rate == pytest.approx(100.0, rel=1e-9)


def test_pause_forgets_the_open_interval_entirely() -> None:
    """Bytes counted before a pause are not part of the first sample after it."""
    meter = BitrateMeter(1.0, min_interval_s=1.0)
    meter.add(0, 0.0)
    meter.add(5_000, 0.5)      # pending, not yet a sample
    meter.pause()
    meter.add(7, 100.0)        # restarts the clock only
    meter.add(1_000, 101.0)
    assert meter.rate == pytest.approx(1_000.0, rel=1e-12)


# -- StoragePolicy -----------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [{"warn_s": 0}, {"reserve_segments": 0}, {"segment_s": 0},
                                {"headroom": 0.99}])
def test_policy_refuses_nonsense(kw: dict[str, float]) -> None:
    """Each bad setting alone is refused, with the rule in the message."""
    with pytest.raises(ValueError, match=exactly(
            "need warn_s > 0, reserve_segments >= 1, segment_s > 0, headroom >= 1")):
        StoragePolicy(**kw)  # type: ignore[arg-type]


def test_policy_limits_are_allowed() -> None:
    """One reserve segment and no headroom are legitimate settings."""
    policy = StoragePolicy(warn_s=0.5, reserve_segments=1, segment_s=0.5, headroom=1.0)
    assert policy.reserve_bytes(100.0) == 50


def test_policy_defaults() -> None:
    """Defaults: warn below 1 h, 2 segments of 60 s reserved, 10 % headroom, 5 min hysteresis."""
    policy = StoragePolicy()
    assert (policy.warn_s, policy.reserve_segments, policy.segment_s, policy.headroom,
            policy.hysteresis_s) == (3600, 2, 60.0, 1.1, 300)


@pytest.mark.parametrize(("segment_s", "rate", "headroom", "expected"), [
    (60, 500_000.0, 1.1, 33_000_000),   # 33000000.000000004 in floats: no dust
    (1, 100.0004, 1.0, 100),            # below a thousandth of a byte: rounded away
    (1, 100.4, 1.0, 101),               # a fraction of a byte is a whole byte
    (2, 0.25, 1.0, 1),
])
def test_segment_bytes_rounds_up_but_not_float_dust(segment_s: float, rate: float,
                                                    headroom: float, expected: int) -> None:
    """A segment's expected size is rounded up to whole bytes, after dropping float error."""
    policy = StoragePolicy(segment_s=segment_s, headroom=headroom)
    assert policy.segment_bytes(rate) == expected


def test_bitrate_must_be_positive_but_may_be_small() -> None:
    """Zero or negative bitrate is a bug upstream; half a byte per second is a rate."""
    policy = StoragePolicy(segment_s=10, headroom=1.0)
    for bad in (0, -1):
        with pytest.raises(ValueError, match=exactly("bitrate must be > 0")):
            policy.evaluate(reading(10**9), bad)
    verdict = policy.evaluate(reading(10**9), 0.5)
    assert verdict.level == OK and verdict.bitrate_bps == 0.5


def test_verdict_carries_the_numbers() -> None:
    """The verdict reports free space, reserve, time left above the reserve and the rate."""
    policy = StoragePolicy(warn_s=100, segment_s=10, headroom=1.0)
    v = policy.evaluate(reading(2_000 + 1_000 * 150 + 999), 1_000.0)
    assert (v.level, v.reasons, v.free_bytes, v.reserve_bytes, v.recording_s, v.bitrate_bps) == (
        OK, (), 152_999, 20_000, 132, 1_000.0)


def test_thresholds_are_inclusive_where_the_design_says() -> None:
    """Exactly the reserve free is not full; exactly warn_s left is a warning."""
    policy = StoragePolicy(warn_s=100, segment_s=10, headroom=1.0, hysteresis_s=50)
    reserve = policy.reserve_bytes(1_000.0)
    assert policy.evaluate(reading(reserve - 1), 1_000.0).level == FULL
    policy = StoragePolicy(warn_s=100, segment_s=10, headroom=1.0, hysteresis_s=50)
    v = policy.evaluate(reading(reserve), 1_000.0)
    assert v.level == WARN and v.recording_s == 0
    policy = StoragePolicy(warn_s=100, segment_s=10, headroom=1.0, hysteresis_s=50)
    assert policy.evaluate(reading(reserve + 100_000), 1_000.0).level == WARN
    policy = StoragePolicy(warn_s=100, segment_s=10, headroom=1.0, hysteresis_s=50)
    assert policy.evaluate(reading(reserve + 101_000), 1_000.0).level == OK


def test_hysteresis_edge_and_it_applies_after_full_too() -> None:
    """A warning (or a full disk) is left only past warn_s + hysteresis_s, not at it."""
    policy = StoragePolicy(warn_s=100, segment_s=10, headroom=1.0, hysteresis_s=50)
    reserve = policy.reserve_bytes(1_000.0)
    assert policy.evaluate(reading(reserve - 1), 1_000.0).level == FULL
    assert policy.evaluate(reading(reserve + 150_000), 1_000.0).level == WARN
    assert policy.evaluate(reading(reserve + 151_000), 1_000.0).level == OK
    assert policy.evaluate(reading(reserve + 150_000), 1_000.0).level == OK  # from OK: no lag


def test_admission_reasons_name_the_numbers() -> None:
    """Refusals say why in words an officer's supervisor can act on."""
    policy = StoragePolicy()
    assert policy.can_start().reason == "storage not yet measured"
    policy.evaluate(reading(10_000_000), 500_000.0)
    assert policy.can_start().reason == (
        "storage full: only 10000000 bytes free, 66000000 needed for 2 segments")
    policy.evaluate(reading(10**12, read_only=True), 500_000.0)
    assert policy.can_start().reason == "storage full: the data filesystem is read-only"
    policy.evaluate(reading(10**12), 500_000.0)
    admission = policy.can_start()
    assert admission and admission.reason == ""


def test_a_full_disk_has_no_recording_time_left_even_at_a_trickle() -> None:
    """Below the reserve the time left is zero, also at a bitrate under one byte a second
    (where a single spare byte would read as seconds)."""
    policy = StoragePolicy(segment_s=10, headroom=1.0)
    v = policy.evaluate(reading(5), 0.5)
    assert (v.level, v.recording_s, v.reserve_bytes) == (FULL, 0, 10)


def test_policy_eviction_honours_the_retention_minimum() -> None:
    """The retention minimum given to the policy reaches the planner: a young receipted
    segment is kept however full the disk."""
    policy = StoragePolicy(segment_s=10, reserve_segments=2, headroom=1.0)
    segments = [seg(0, size=2_500, sealed_at=NOW - 60), seg(1, size=2_500, sealed_at=NOW - 7200)]
    plan = policy.plan_eviction(segments, reading(0), 100.0, now=NOW, min_age_s=3600)
    assert plan.paths == (segments[1].path,) and not plan.satisfied


def test_policy_eviction_target_and_default_age() -> None:
    """The policy asks for the reserve plus one segment; without a retention minimum a
    segment sealed this very second may go."""
    policy = StoragePolicy(segment_s=10, reserve_segments=2, headroom=1.0)
    segments = [seg(0, size=2_500, sealed_at=NOW)]
    plan = policy.plan_eviction(segments, reading(500), 100.0, now=NOW)
    assert plan.needed_bytes == 2_500 and plan.paths == (segments[0].path,) and plan.satisfied


# -- plan_eviction -----------------------------------------------------------------------------

def test_exactly_enough_stops_the_plan() -> None:
    """Freeing exactly what is needed is enough: no further segment is taken."""
    segments = [seg(0), seg(1), seg(2)]
    plan = plan_eviction(segments, free_bytes=0, target_free_bytes=200, now=NOW)
    assert plan.paths == (segments[0].path, segments[1].path)
    assert plan.freed_bytes == 200 and plan.satisfied


def test_a_segment_sealed_now_is_old_enough_without_a_minimum() -> None:
    """Default min_age 0: a segment sealed at ``now`` is a candidate; one a second in the
    future (clock stepped back) is not."""
    segments = [seg(0, sealed_at=NOW + 1), seg(1, sealed_at=NOW)]
    plan = plan_eviction(segments, free_bytes=0, target_free_bytes=1_000, now=NOW)
    assert plan.paths == (segments[1].path,) and not plan.satisfied
    assert plan.needed_bytes == 1_000 and plan.freed_bytes == 100


def test_retention_minimum_is_inclusive() -> None:
    """A segment exactly min_age_s old may go; one a second younger may not."""
    segments = [seg(0, sealed_at=NOW - 99), seg(1, sealed_at=NOW - 100)]
    plan = plan_eviction(segments, free_bytes=0, target_free_bytes=1_000, now=NOW,
                         min_age_s=100)
    assert plan.paths == (segments[1].path,)


def test_a_new_warning_threshold_applies_from_the_next_reading() -> None:
    """A live storage.warn_min change moves the warning threshold for the next verdict."""
    policy = StoragePolicy(warn_s=100, segment_s=10, headroom=1.0)
    free = policy.reserve_bytes(1_000.0) + 150_000  # 150 s above the reserve
    assert policy.evaluate(reading(free), 1_000.0).level == OK
    policy.set_warn_s(200)
    assert policy.warn_s == 200
    assert policy.evaluate(reading(free), 1_000.0).reasons == ("space_low",)
