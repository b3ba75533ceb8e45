"""Scripted scenarios: what the bench does to the unit, and the raw observations it keeps.

* :func:`record_scenario` -- let the pre-event buffer fill, press, bookmark, record, stop;
  times the press-to-record and stop-to-sealed latencies and keeps the checkpoint seen
  mid-run (the tamper suite replays it later).
* :func:`crash_scenario` -- a second recording cut by SIGKILL (sim) or a power pull (the
  operator, on a real unit); the unit must come back and seal what was interrupted.
* :func:`rundown_scenario` -- (sim) a battery set low and fast-forwarded with ``time_scale``
  while recording: when the warning came and how much recording time was really left.

Press times are taken from ``time.monotonic_ns()`` on the bench: the same CLOCK_MONOTONIC as
the unit's media timestamps when the bench runs on the unit (or beside the simulator).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.command.ctl_server import CtlUnavailable

from .progress import Progress
from .unit import BenchError, SimUnit, StatusSampler, Unit

__all__ = ["CrashRun", "RecordRun", "RundownRun", "crash_scenario", "record_scenario",
           "rundown_scenario", "wait_sealed"]

_POLL_S = 0.02


@dataclass(slots=True)
class RecordRun:
    """Observations of the main recording."""

    recording_id: str | None = None
    press_mono_us: int = 0
    press_to_record_ms: float | None = None
    stop_to_sealed_ms: float | None = None
    old_checkpoint: bytes | None = None
    ended_at: float | None = None  # bench monotonic s: sealed, before any later scenario
    samples: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class CrashRun:
    """Observations of the crash-recovery scenario."""

    measurable: bool = True
    reason: str = ""
    recording_id: str | None = None
    sealed_before: int = 0
    came_back_s: float | None = None


@dataclass(slots=True)
class RundownRun:
    """Observations of the battery rundown (battery time = real time x time_scale)."""

    time_scale: float = 1.0
    start_pct: float = 0.0
    samples: list[dict[str, Any]] = field(default_factory=list)
    warn_at: float | None = None  # bench monotonic s
    warn_left_min: float | None = None  # the unit's own projection at the warning
    warn_energy_mwh: float | None = None  # the reading the warning was decided on
    end_energy_mwh: float | None = None
    left_before_end_min: float | None = None  # projection in the last reading before the end
    end_at: float | None = None
    end_reason: str = ""
    died: bool = False


def _journals(data_dir: Path) -> list[Path]:
    return list((data_dir / "recordings").glob("*/*.open.json"))


def wait_sealed(unit: Unit, timeout: float = 60.0) -> float:
    """Wait until the unit is back in standby with no open segment; seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = unit.status()
        if st.get("state") not in ("recording", "stopping") and not _journals(unit.data_dir):
            return time.monotonic() - t0
        time.sleep(_POLL_S)
    raise BenchError(f"the unit did not seal its recording within {timeout:.0f} s")


def _wait_state(unit: Unit, state: str, timeout: float) -> dict[str, Any]:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        st = unit.status()
        if st.get("state") == state:
            return st
        time.sleep(_POLL_S)
    raise BenchError(f"the unit did not reach state {state!r} within {timeout:.0f} s")


def _fill_preroll(unit: Unit, prerecord_s: float, progress: Progress) -> None:
    """Wait until the pre-event buffer holds what it is configured to hold."""
    deadline = time.monotonic() + prerecord_s + 20
    while time.monotonic() < deadline:
        span = float(unit.status().get("preroll_s", 0.0))
        progress.tick(f"pre-event buffer {span:.1f}/{prerecord_s:.0f} s")
        if span >= prerecord_s - 0.5:
            return
        time.sleep(0.5)


def record_scenario(unit: Unit, *, record_s: float, prerecord_s: float,
                    progress: Progress) -> RecordRun:
    """Fill the buffer, press, record ``record_s`` with a bookmark, stop and wait for the seal."""
    run = RecordRun()
    progress.phase("standby: filling the pre-event buffer")
    _fill_preroll(unit, prerecord_s, progress)
    time.sleep(1.0)  # a few standby samples for the standby draw
    progress.phase("recording: press")
    t_press = time.monotonic_ns()
    run.press_mono_us = t_press // 1000
    st = unit.ctl("press")
    if st.get("state") != "recording":
        st = _wait_state(unit, "recording", 10.0)
    run.press_to_record_ms = round((time.monotonic_ns() - t_press) / 1e6, 1)
    run.recording_id = st.get("recording_id")
    t0 = time.monotonic()
    bookmarked = False
    while (el := time.monotonic() - t0) < record_s:
        st = unit.status()
        if st.get("state") != "recording":
            raise BenchError(f"the unit stopped recording by itself after {el:.0f} s "
                             f"(state {st.get('state')}, reason {st.get('stop_reason')})")
        if not bookmarked and el >= record_s / 2:
            try:
                unit.ctl("bookmark", {"label": "bench mid-point"})
                bookmarked = True
            except BenchError as exc:  # e.g. between segments: try again on the next turn
                progress.note(f"bookmark refused ({exc}); retrying")
        if run.old_checkpoint is None and int(st.get("segments_sealed", 0)) >= 1:
            run.old_checkpoint = _read_checkpoint(unit.data_dir)
        progress.tick(f"{el:5.0f}/{record_s:.0f} s, {st.get('segments_sealed', 0)} segments, "
                      f"battery {st.get('battery_pct', '?')} %")
        time.sleep(min(1.0, max(0.05, record_s - el)))
    progress.phase("recording: stop and seal")
    t_stop = time.monotonic()
    unit.ctl("stop")
    wait_sealed(unit)
    run.stop_to_sealed_ms = round((time.monotonic() - t_stop) * 1000, 1)
    time.sleep(1.0)
    run.ended_at = time.monotonic()
    return run


def _read_checkpoint(data_dir: Path) -> bytes | None:
    try:
        return (data_dir / "log" / "checkpoint").read_bytes()
    except OSError:
        return None


def crash_scenario(unit: Unit, *, segment_s: float, progress: Progress,
                   ask_operator: Callable[[str], None] | None = None) -> CrashRun:
    """Record past one roll, cut the power mid-segment, bring the unit back."""
    run = CrashRun()
    progress.phase("crash recovery: recording")
    st = unit.ctl("press")
    if st.get("state") != "recording":
        st = _wait_state(unit, "recording", 10.0)
    run.recording_id = st.get("recording_id")
    sealed0 = int(st.get("segments_sealed", 0))
    t0 = time.monotonic()
    while time.monotonic() - t0 < segment_s * 3 + 10:
        st = unit.status()
        if int(st.get("segments_sealed", 0)) > sealed0:
            break
        progress.tick(f"waiting for a segment roll ({time.monotonic() - t0:.0f} s)")
        time.sleep(0.2)
    time.sleep(min(2.0, segment_s / 2))  # now in the middle of the next segment
    run.sealed_before = int(unit.status().get("segments_sealed", 0)) - sealed0
    t_cut = time.monotonic()
    if isinstance(unit, SimUnit):
        progress.phase("crash recovery: SIGKILL the agent and restart it")
        unit.kill()
        unit.start()
    else:
        if ask_operator is None:
            run.measurable, run.reason = False, "no operator to cut the power"
            unit.ctl("stop")
            return run
        ask_operator("PULL THE POWER of the unit now (battery out / supply off), wait 5 s, "
                     "then power it on again. The bench waits up to 10 min.")
        if not _wait_gone(unit, 600):
            run.measurable, run.reason = False, "the unit never went down (power not pulled)"
            unit.ctl("stop")
            return run
    unit.wait_ready(timeout=600 if not isinstance(unit, SimUnit) else 60)
    run.came_back_s = round(time.monotonic() - t_cut, 2)
    wait_sealed(unit, timeout=60)
    return run


def _wait_gone(unit: Unit, timeout: float) -> bool:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            unit.status()
        except (CtlUnavailable, BenchError, OSError):
            return True
        time.sleep(0.5)
    return False


def rundown_scenario(unit: SimUnit, *, time_scale: float, start_pct: float,
                     die_at_pct: float | None, progress: Progress,
                     timeout_s: float = 90.0) -> RundownRun:
    """Record on a battery set to ``start_pct`` until the unit stops or the battery dies."""
    run = RundownRun(time_scale=time_scale, start_pct=start_pct)
    progress.phase(f"battery rundown (x{time_scale:g} battery time)")
    unit.wait_ready()
    st = unit.ctl("press")
    if st.get("state") != "recording":
        _wait_state(unit, "recording", 10.0)
    unit.ctl("sim", {"device": "battery", "verb": "set", "value": start_pct})
    if die_at_pct is not None:
        unit.ctl("sim", {"device": "battery", "verb": "die-at", "value": die_at_pct})
    sampler = StatusSampler(unit, period_s=0.1)
    sampler.start()
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout_s:
            samples = sampler.samples()
            if samples and _rundown_over(run, samples[-1]):
                break
            if samples:
                s = samples[-1]
                progress.tick(f"battery {s.get('battery_pct')} %, "
                              f"{s.get('battery_level')}, {s.get('state')}")
            time.sleep(0.1)
    finally:
        sampler.stop()
    run.samples = sampler.samples()
    for s in run.samples:
        if run.end_at is not None and s["t"] >= run.end_at:
            break  # a warning raised by the death itself warned nobody
        rec_s = _num(s.get("battery_recording_s"))
        if rec_s is not None:
            run.left_before_end_min = round(rec_s / 60, 2)
        if run.warn_at is None and s.get("battery_level") in ("warn", "critical"):
            run.warn_at = float(s["t"])
            rec = s.get("battery_recording_s")
            run.warn_left_min = round(rec / 60, 2) if isinstance(rec, int | float) else None
            run.warn_energy_mwh = _num(s.get("battery_energy_mwh"))
    if run.end_at is None:
        run.end_reason = f"neither a stop nor a dead battery within {timeout_s:.0f} s"
    return run


def _rundown_over(run: RundownRun, s: dict[str, Any]) -> bool:
    """The end of recording capability: a policy stop, or the battery dying under the unit."""
    if s.get("battery_undervoltage") or int(s.get("battery_power_mw", 1) or 0) == 0:
        run.end_at, run.end_reason, run.died = float(s["t"]), "battery died", True
        run.end_energy_mwh = _num(s.get("battery_energy_mwh"))
        return True
    if s.get("state") != "recording":
        run.end_at = float(s["t"])
        run.end_energy_mwh = _num(s.get("battery_energy_mwh"))
        run.end_reason = f"recording stopped ({s.get('stop_reason')})"
        return True
    return False


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None
