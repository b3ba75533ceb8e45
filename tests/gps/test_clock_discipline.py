"""ClockDiscipline: source selection, error bounds, steps, exact mapping, drift."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.clock.discipline import (
    AdjtimexProbe,
    ClockDiscipline,
    ClockSource,
    ClockStep,
    NtpState,
    TimesyncFileProbe,
)
from agent.evidence.canonical import canonical_json
from hw.errors import ClockError
from hw.gps import Fix

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
T0_NS = int(T0.timestamp()) * 1_000_000_000


class FakeClocks:
    """A monotonic and a wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.mono = 5_000_000_000
        self.wall = T0_NS

    def advance(self, ns: int) -> None:
        self.mono += ns
        self.wall += ns

    def step_wall(self, ns: int) -> None:
        self.wall += ns


class FakeNtp:
    def __init__(self, state: NtpState | None = None) -> None:
        self.state = state or NtpState(False)

    def read(self) -> NtpState:
        return self.state


def make(clocks: FakeClocks, ntp: FakeNtp, root: Path, **kw: object) -> ClockDiscipline:
    return ClockDiscipline(
        ntp=ntp, root=root, wall_ns=lambda: clocks.wall, mono_ns=lambda: clocks.mono,
        **kw,  # type: ignore[arg-type]
    )


def gps_fix(clocks: FakeClocks, gps_minus_system_ms: int = 0) -> Fix:
    """A fix received now whose UTC differs from the system clock by the given amount."""
    utc = datetime.fromtimestamp(0, UTC) + timedelta(
        microseconds=(clocks.wall + gps_minus_system_ms * 1_000_000) // 1000
    )
    return Fix(mode=3, utc=utc, lat=31.2, lon=121.4, received_mono_ns=clocks.mono)


@pytest.fixture
def clocks() -> FakeClocks:
    return FakeClocks()


def test_no_source_is_untrusted(clocks: FakeClocks, tmp_path: Path) -> None:
    """Without NTP, GPS or RTC the clock is 'none' and untrusted."""
    status = make(clocks, FakeNtp(), tmp_path).status()
    assert (status.source, status.error_ms, status.trusted) == (ClockSource.NONE, None, False)
    assert canonical_json(status.clock_info().to_json()) == \
        b'{"est_error_ms":null,"source":"none","trusted":false}'


def test_rtc_alone_is_untrusted(clocks: FakeClocks, tmp_path: Path) -> None:
    """A battery RTC is reported as the source, but not trusted."""
    (tmp_path / "sys/class/rtc/rtc0").mkdir(parents=True)
    status = make(clocks, FakeNtp(), tmp_path).status()
    assert (status.source, status.trusted, status.rtc_present) == (ClockSource.RTC, False, True)


def test_ntp_wins_and_reports_kernel_error(clocks: FakeClocks, tmp_path: Path) -> None:
    """A synchronised kernel clock is the source, with its own error estimate."""
    clock = make(clocks, FakeNtp(NtpState(True, 12)), tmp_path)
    clock.observe_fix(gps_fix(clocks, 40))
    status = clock.status()
    assert (status.source, status.error_ms, status.trusted) == (ClockSource.NTP, 12, True)
    assert status.gps_offset_ms == 40, "GPS still cross-checks the NTP clock"


def test_fresh_gps_disciplines_and_ages_out(clocks: FakeClocks, tmp_path: Path) -> None:
    """A fresh fix makes GPS the source; after gps_max_age_s it no longer counts."""
    clock = make(clocks, FakeNtp(), tmp_path, gps_max_age_s=5.0, gps_uncertainty_ms=250)
    clock.observe_fix(gps_fix(clocks, 120))
    status = clock.status()
    assert (status.source, status.error_ms, status.trusted) == (ClockSource.GPS, 370, True)
    assert status.gps_offset_ms == 120 and not status.ntp_synchronized and not status.rtc_present
    assert canonical_json(status.clock_info().to_json()) == \
        b'{"est_error_ms":370,"source":"gps","trusted":true}'
    clocks.advance(6_000_000_000)
    assert clock.status().source == ClockSource.NONE


def test_stale_marker_and_no_position_fixes_are_ignored(
    clocks: FakeClocks, tmp_path: Path
) -> None:
    """Only a real fix with UTC and position can discipline the clock."""
    clock = make(clocks, FakeNtp(), tmp_path)
    clock.observe_fix(Fix(mode=1, utc=T0, received_mono_ns=clocks.mono))
    clock.observe_fix(Fix(mode=1, utc=None, received_mono_ns=clocks.mono, stale=True))
    assert clock.status().source == ClockSource.NONE


def test_wrong_system_clock_is_corrected_by_gps(clocks: FakeClocks, tmp_path: Path) -> None:
    """System clock 10 s slow, no NTP: UTC for media comes from GPS, not the bad clock."""
    clock = make(clocks, FakeNtp(), tmp_path)
    clock.observe_fix(gps_fix(clocks, 10_000))
    system_now = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=clocks.wall // 1000)
    assert clock.utc_for_mono(clocks.mono) == system_now + timedelta(seconds=10)
    assert clock.status().error_ms == 250


def test_mapping_maps_media_time_exactly(clocks: FakeClocks, tmp_path: Path) -> None:
    """A recorded pair maps any later monotonic stamp to UTC to the microsecond."""
    clock = make(clocks, FakeNtp(NtpState(True, 5)), tmp_path)
    pair = clock.mapping()
    assert pair == {"mono_us": clocks.mono // 1000, "utc": "2026-03-01T12:00:00.000000Z"}
    later = clocks.mono + 3_723_456_789
    assert clock.utc_for_mono(later, pair) == T0 + timedelta(microseconds=3_723_456)
    clocks.step_wall(-7_000_000_000)  # a later clock step does not rewrite recorded segments
    assert clock.utc_for_mono(later, pair) == T0 + timedelta(microseconds=3_723_456)


@pytest.mark.parametrize("pair", [{"mono_us": 1}, {"mono_us": "x", "utc": "2026-03-01T12:00:00.0Z"},
                                  {"mono_us": 1, "utc": "2026-03-01 12:00"}])
def test_malformed_mapping_raises_clock_error(
    clocks: FakeClocks, tmp_path: Path, pair: dict[str, int | str]
) -> None:
    """A damaged mapping is a ClockError naming the mapping, not a bare KeyError."""
    with pytest.raises(ClockError, match="mapping"):
        make(clocks, FakeNtp(), tmp_path).utc_for_mono(0, pair)


def test_clock_step_is_reported_once(clocks: FakeClocks, tmp_path: Path) -> None:
    """A 2 s jump of wall vs monotonic emits one clock_step with old/new offsets."""
    steps: list[ClockStep] = []
    clock = make(clocks, FakeNtp(), tmp_path, step_threshold_ms=500, on_clock_step=steps.append)
    clocks.advance(1_000_000_000)
    clocks.step_wall(300_000_000)  # slew-sized: not a step
    assert clock.check_step() is None
    clocks.step_wall(2_000_000_000)
    step = clock.check_step()
    assert step is not None and steps == [step]
    assert step.delta_ms == 2300
    assert step.as_event()["type"] == "clock_step"
    assert step.new_offset_ms - step.old_offset_ms == 2300
    assert clock.check_step() is None, "reported once"


def test_drift_against_gps(clocks: FakeClocks, tmp_path: Path) -> None:
    """GPS gaining 50 ppm on the system clock reads as the system clock losing 50 ppm."""
    clock = make(clocks, FakeNtp(), tmp_path)
    assert clock.drift() is None
    for second in range(600):
        clock.observe_fix(gps_fix(clocks, 0) if second == 0 else _drifted(clocks, second, 50))
        clocks.advance(1_000_000_000)
    drift = clock.drift()
    assert drift is not None and drift.samples == 600
    assert drift.ppm == pytest.approx(-50, abs=0.5)
    assert drift.s_per_day == pytest.approx(-4.32, abs=0.05)


def _drifted(clocks: FakeClocks, second: int, ppm: int) -> Fix:
    micro_offset = second * ppm  # µs gained by GPS after `second` seconds
    utc = datetime.fromtimestamp(0, UTC) + timedelta(microseconds=clocks.wall // 1000 + micro_offset)
    return Fix(mode=3, utc=utc, lat=1.0, lon=1.0, received_mono_ns=clocks.mono)


def test_untrusted_recording_warns(
    clocks: FakeClocks, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Starting a recording on an untrusted clock logs a warning."""
    with caplog.at_level(logging.WARNING, logger="agent.clock.discipline"):
        status = make(clocks, FakeNtp(), tmp_path).status_for_recording()
    assert not status.trusted
    assert "untrusted clock" in caplog.text


def test_timesyncd_flag_probe(tmp_path: Path) -> None:
    """The timesyncd flag file under a root path decides synchronisation."""
    probe = TimesyncFileProbe(tmp_path)
    assert probe.read() == NtpState(False)
    flag = tmp_path / "run/systemd/timesync/synchronized"
    flag.parent.mkdir(parents=True)
    flag.touch()
    assert probe.read().synchronized


def test_adjtimex_probe_reads_the_real_kernel() -> None:
    """The ctypes adjtimex call works read-only and gives a coherent answer."""
    state = AdjtimexProbe().read()
    assert isinstance(state.synchronized, bool)
    if state.synchronized:
        assert state.error_ms is not None and state.error_ms >= 1
    else:
        assert state.error_ms is None


def test_drift_survives_latency_spikes(clocks: FakeClocks, tmp_path: Path) -> None:
    """Late-delivered fixes (a loaded CPU) do not bias drift: least-delayed samples count."""
    clock = make(clocks, FakeNtp(), tmp_path)
    for second in range(900):
        late_ms = 300 if second > 450 and second % 3 else 2 + second % 5  # a loaded second half
        fix = _drifted(clocks, second, 20)
        assert fix.utc is not None
        clock.observe_fix(replace(fix, utc=fix.utc - timedelta(milliseconds=late_ms)))
        clocks.advance(1_000_000_000)
    drift = clock.drift()
    assert drift is not None
    assert drift.ppm == pytest.approx(-20, abs=3)


def test_offset_uses_the_first_sentence_of_the_epoch(clocks: FakeClocks, tmp_path: Path) -> None:
    """A 700 ms NMEA burst does not read as a 700 ms clock error: the epoch start counts."""
    clock = make(clocks, FakeNtp(), tmp_path)
    fix = gps_fix(clocks, 0)
    burst_start = clocks.mono
    clocks.advance(700_000_000)  # the burst ends 0.7 s later
    clock.observe_fix(replace(fix, epoch_mono_ns=burst_start, received_mono_ns=clocks.mono))
    assert clock.status().gps_offset_ms == 0


def test_week_rollover_receiver_never_disciplines(clocks: FakeClocks, tmp_path: Path) -> None:
    """A receiver reporting 1024 weeks in the past is ignored, not used as a correction."""
    clock = make(clocks, FakeNtp(), tmp_path)
    fix = gps_fix(clocks, 0)
    assert fix.utc is not None
    clock.observe_fix(replace(fix, utc=fix.utc - timedelta(weeks=1024)))
    assert clock.status().source == ClockSource.NONE
    assert clock.utc_for_mono(clocks.mono).year == 2026
