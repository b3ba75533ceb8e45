"""StoragePolicy verdicts, admission and the bitrate meter."""

from __future__ import annotations

import pytest

from agent.storage.space_policy import FULL, OK, WARN, BitrateMeter, StoragePolicy
from hw.storage import StorageReading

MB = 1_000_000
RATE = 500_000.0  # 4 Mbit/s


def reading(free: int, *, read_only: bool = False) -> StorageReading:
    return StorageReading(total_bytes=64_000 * MB, free_bytes=free, read_only=read_only)


def test_reserve_is_open_segment_plus_one() -> None:
    """60 s segments at 500 kB/s with 10 % headroom: 33 MB each, 66 MB reserved."""
    policy = StoragePolicy()
    assert policy.segment_bytes(RATE) == 33 * MB
    assert policy.reserve_bytes(RATE) == 66 * MB


def test_levels_and_remaining_time() -> None:
    """Recording time counts above the reserve; warn at ≤ 1 h; full below the reserve."""
    policy = StoragePolicy()
    plenty = policy.evaluate(reading(66 * MB + int(RATE * 7200)), RATE)
    assert plenty.level == OK and plenty.recording_s == 7200
    low = policy.evaluate(reading(66 * MB + int(RATE * 3600)), RATE)
    assert low.level == WARN and low.reasons == ("space_low",)
    full = policy.evaluate(reading(66 * MB - 1), RATE)
    assert full.level == FULL and full.reasons == ("below_reserve",) and full.recording_s == 0


def test_warn_hysteresis() -> None:
    """A warning is left only 5 min beyond the threshold."""
    policy = StoragePolicy(hysteresis_s=300)
    base = 66 * MB
    policy.evaluate(reading(base + int(RATE * 3500)), RATE)
    assert policy.evaluate(reading(base + int(RATE * 3800)), RATE).level == WARN
    assert policy.evaluate(reading(base + int(RATE * 3901)), RATE).level == OK


def test_read_only_is_full() -> None:
    """A read-only filesystem cannot take a recording whatever its free space."""
    policy = StoragePolicy()
    verdict = policy.evaluate(reading(10_000 * MB, read_only=True), RATE)
    assert verdict.level == FULL and verdict.reasons == ("read_only",)
    admission = policy.can_start()
    assert not admission and "read-only" in admission.reason


def test_can_start() -> None:
    """Refused before any reading and when full (with the numbers); allowed when warned."""
    policy = StoragePolicy()
    assert not policy.can_start()
    policy.evaluate(reading(10 * MB), RATE)
    refused = policy.can_start()
    assert not refused and "10000000 bytes free, 66000000 needed" in refused.reason
    policy.evaluate(reading(100 * MB), RATE)
    assert policy.verdict is not None and policy.verdict.level == WARN
    assert policy.can_start()


def test_invalid_arguments() -> None:
    """Nonsense configuration and a zero bitrate are refused."""
    with pytest.raises(ValueError):
        StoragePolicy(reserve_segments=0)
    with pytest.raises(ValueError):
        StoragePolicy().evaluate(reading(1), 0)
    with pytest.raises(ValueError):
        BitrateMeter(0)


def test_bitrate_meter_nominal_then_measured() -> None:
    """The nominal rate is used until a full interval was measured, then the smoothed one."""
    meter = BitrateMeter(500_000, tau_s=30, min_interval_s=1)
    assert meter.rate == 500_000 and not meter.measured
    meter.add(100_000, 0.0)
    meter.add(200_000, 0.5)
    assert not meter.measured
    meter.add(700_000, 1.0)
    assert meter.measured and meter.rate == pytest.approx(900_000)


def test_bitrate_meter_smooths_and_ignores_pauses() -> None:
    """A short burst moves the rate a little; an idle pause is not averaged in."""
    meter = BitrateMeter(500_000, tau_s=30)
    t = 0.0
    for _ in range(60):
        meter.add(500_000, t)
        t += 1
    steady = meter.rate
    meter.add(2_000_000, t)
    assert steady == pytest.approx(500_000, rel=0.01)
    assert 500_000 < meter.rate < 600_000
    meter.pause()
    t += 600  # ten idle minutes
    meter.add(0, t)
    meter.add(500_000, t + 1)
    assert meter.rate > 400_000
