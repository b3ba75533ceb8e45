"""Turn the scenarios' observations and the decoded evidence into named figures.

Every figure a spec can name is produced here, with its unit and a one-line account of how it
was obtained, so report.json says not only *what* was measured but *how*. A figure that could
not be measured is kept with ``value=None`` and the reason.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from .readback import Recording
from .scenarios import CrashRun, RecordRun, RundownRun
from .spec import Measurement
from .tamper import TamperResult
from .timeline import AvPair, Cadence, av_pairs, cadence, segment_gaps

__all__ = ["Figures", "battery_figures", "evidence_figures", "integrity_figures",
           "rundown_figures"]


@dataclass(slots=True)
class Figures:
    """Measured figures plus the series the report plots."""

    values: dict[str, Measurement] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)

    def put(self, name: str, value: float | str | None, unit: str, detail: str = "") -> None:
        """Record one figure."""
        self.values[name] = Measurement(value, unit, detail)

    def missing(self, names: tuple[str, ...], unit: str, why: str) -> None:
        """Record figures that could not be measured, with the reason."""
        for n in names:
            self.values[n] = Measurement(None, unit, why)


def evidence_figures(fig: Figures, rec: Recording, run: RecordRun) -> None:
    """Picture, cadence, gaps, A/V sync and pre-roll, from the main recording's media."""
    segs = [s for s in rec.segments if s.video_pts_us]
    errors = [s.error for s in rec.segments if s.error]
    if errors:
        fig.series["decode_errors"] = errors
    if not segs:
        fig.missing(("video_width", "video_height", "video_fps", "frames_dropped"), "",
                    "no segment could be decoded: " + "; ".join(errors[:3]))
        return
    _picture(fig, rec)
    cad = cadence(rec)
    _cadence(fig, cad)
    gaps = segment_gaps(rec)
    fig.series["segment_gaps"] = [{"seq": q, "gap_ms": g} for q, g in gaps]
    if gaps:
        worst = max(gaps, key=lambda g: g[1])
        fig.put("segment_gap_ms_max", worst[1], "ms",
                f"{len(gaps)} segment rolls; largest gap before segment {worst[0]}")
        fig.put("segment_gaps_nonzero", sum(g > 0 for _, g in gaps), "rolls",
                "rolls that lost media")
    else:
        fig.missing(("segment_gap_ms_max",), "ms", "the recording has a single segment")
    _av(fig, av_pairs(rec), cad)
    first = segs[0].video_pts_us[0]
    fig.put("preroll_captured_s", round((run.press_mono_us - first) / 1e6, 3), "s",
            "first frame of the recording to the bench's press instant (CLOCK_MONOTONIC)")
    fig.put("press_to_record_ms", run.press_to_record_ms, "ms",
            "press sent to the unit reporting 'recording' (includes the button press itself)")
    fig.put("stop_to_sealed_ms", run.stop_to_sealed_ms, "ms",
            "stop sent to the last manifest sealed and no open segment left")
    bms = [b for s in rec.segments for b in s.manifest.get("bookmarks", [])]
    fig.put("bookmarks_recorded", len(bms), "count", "bookmarks in the signed manifests")


def _picture(fig: Figures, rec: Recording) -> None:
    probe = rec.segments[0].probe
    v: dict[str, Any] = next(
        (s for s in probe.get("streams", []) if s.get("codec_type") == "video"), {})
    fig.put("video_width", v.get("width"), "px", "ffprobe, decrypted first segment")
    fig.put("video_height", v.get("height"), "px", "ffprobe, decrypted first segment")
    rate = str(v.get("r_frame_rate") or "0/1")
    num, _, den = rate.partition("/")
    fps = round(float(num) / float(den or 1), 3) if float(den or 1) else None
    fig.put("video_fps_stream", fps, "fps", f"ffprobe stream frame rate {rate} (what it claims)")
    fig.put("video_codec", str(v.get("codec_name", "?")), "", "ffprobe")
    fig.put("video_profile", str(v.get("profile", "?")), "", "ffprobe")
    plain = sum(int(s.manifest.get("file", {}).get("plain_bytes", 0)) for s in rec.segments)
    stored = sum(int(s.manifest.get("file", {}).get("cipher_bytes", 0)) for s in rec.segments)
    dur = sum(int(s.manifest.get("media", {}).get("duration_us", 0)) for s in rec.segments)
    if dur > 0:
        fig.put("bitrate_bps", round(plain * 8e6 / dur), "bit/s",
                "all streams: plaintext bytes over recorded duration")
        fig.put("stored_bitrate_bps", round(stored * 8e6 / dur), "bit/s",
                "encrypted bytes on storage over recorded duration")
    vb = [int(st.get("bit_rate", 0) or 0) for s in rec.segments
          for st in s.probe.get("streams", []) if st.get("codec_type") == "video"]
    if vb:
        fig.put("video_bitrate_bps", round(statistics.median(vb)), "bit/s",
                "ffprobe video stream bitrate, median over segments")


def _cadence(fig: Figures, cad: Cadence) -> None:
    fig.put("frames_recorded", cad.frames, "frames", "decoded video frames, all segments")
    fig.put("frames_dropped", cad.dropped, "frames",
            "frames missing from the timestamp sequence, segment boundaries included")
    fig.put("frames_duplicated", cad.duplicated, "frames",
            "repeated or backwards timestamps")
    fig.put("frame_interval_jitter_ms", cad.jitter_p99_ms, "ms",
            f"p99 |interval - {cad.nominal_us / 1000:.2f} ms| (max {cad.jitter_max_ms} ms)")
    fig.put("video_fps", cad.delivered_fps, "fps",
            "frames actually recorded over the recorded span, all segments")
    fig.series["frame_intervals_ms"] = cad.intervals_ms
    fig.series["nominal_interval_ms"] = cad.nominal_us / 1000
    fig.series["drop_times_s"] = cad.drop_times_s[:500]


def _av(fig: Figures, pairs: list[AvPair], cad: Cadence) -> None:
    fig.series["av_offsets"] = [{"t_s": p.t_s, "offset_ms": p.offset_ms} for p in pairs]
    if not pairs:
        fig.missing(("av_offset_ms_max", "av_offset_ms_min", "av_offset_ms_median"), "ms",
                    "no flash/beep pairs found in the media (clapper off, or no audio)")
        return
    offs = [p.offset_ms for p in pairs]
    q = f"{len(pairs)} flash/beep pairs, ±{cad.nominal_us / 2000:.0f} ms frame quantisation"
    fig.put("av_offset_ms_median", round(statistics.median(offs), 2), "ms", q)
    fig.put("av_offset_ms_max", max(offs), "ms", q + "; positive = sound lags picture")
    fig.put("av_offset_ms_min", min(offs), "ms", q + "; negative = sound leads picture")


def _median(samples: list[dict[str, Any]], key: str) -> float | None:
    vals = [float(s[key]) for s in samples if isinstance(s.get(key), int | float)]
    return statistics.median(vals) if vals else None


def battery_figures(fig: Figures, run: RecordRun, *, measured_bps: float | None) -> None:
    """Draw per state, projected runtime, storage hours and clock drift from status samples."""
    standby = [s for s in run.samples if s.get("state") == "standby"]
    recording = [s for s in run.samples if s.get("state") == "recording"]
    fig.series["status"] = [_slim(s) for s in run.samples]
    if not any("battery_pct" in s for s in run.samples):
        fig.missing(("battery_draw_standby_mw", "battery_draw_recording_mw",
                     "battery_projected_recording_h"), "", "the unit reports no battery")
    else:
        fig.put("battery_draw_standby_mw", _median(standby, "battery_draw_mw"), "mW",
                f"median over {len(standby)} standby samples")
        fig.put("battery_draw_recording_mw", _median(recording, "battery_draw_mw"), "mW",
                f"median over {len(recording)} recording samples")
        last = recording[-1] if recording else None
        if last and isinstance(last.get("battery_recording_s"), int | float) and last.get(
                "battery_pct"):
            full = float(last["battery_recording_s"]) / (float(last["battery_pct"]) / 100)
            fig.put("battery_projected_recording_h", round(full / 3600, 2), "h",
                    f"unit's projection {last['battery_recording_s']} s at "
                    f"{last['battery_pct']} %, scaled to a full charge")
    last_any = run.samples[-1] if run.samples else {}
    free = last_any.get("storage_free_bytes")
    if isinstance(free, int) and measured_bps:
        fig.put("storage_recording_h", round(free * 8 / measured_bps / 3600, 2), "h",
                f"{free / 1e9:.2f} GB free at {measured_bps / 1e6:.2f} Mbit/s stored")
    else:
        fig.missing(("storage_recording_h",), "h", "free space or bitrate unknown")
    drift = last_any.get("clock_drift_s_per_day")
    if isinstance(drift, int | float):
        span = (run.samples[-1]["t"] - run.samples[0]["t"]) if run.samples else 0
        fig.put("clock_drift_s_per_day", float(drift), "s/day",
                f"unit's GPS cross-check over a {span:.0f} s run (least squares)")
        fig.put("clock_drift_s_per_day_abs", abs(float(drift)), "s/day", "magnitude")
    else:
        fig.missing(("clock_drift_s_per_day", "clock_drift_s_per_day_abs"), "s/day",
                    "no GPS time to compare with (no fix during the run)")


_KEEP = ("t", "state", "battery_pct", "battery_draw_mw", "battery_recording_s",
         "battery_level", "clock_drift_s_per_day", "clock_error_ms", "cpu_pct", "soc_temp_c",
         "storage_free_bytes", "storage_recording_s", "frames_delivered", "frames_dropped")


def _slim(s: dict[str, Any]) -> dict[str, Any]:
    return {k: s[k] for k in _KEEP if k in s}


def rundown_figures(fig: Figures, run: RundownRun | None, why: str = "") -> None:
    """When the low-battery warning came and how much recording time it really left."""
    names = ("battery_warn_lead_min", "battery_warn_left_min", "battery_died_unwarned",
             "battery_left_at_end_min")
    if run is None:
        fig.missing(names, "", why or "not measurable on this unit (needs the battery simulator)")
        return
    # readings taken before the pack was set low still show the old charge: not the rundown
    low = [s for s in run.samples if float(s.get("battery_pct", 0)) <= run.start_pct + 1]
    t0 = low[0]["t"] if low else 0.0
    fig.series["rundown"] = [{**_slim(s), "battery_t_min": round((s["t"] - t0) * run.time_scale
                                                                 / 60, 2)} for s in low]
    fig.series["rundown_end"] = run.end_reason
    fig.series["rundown_warn_min"] = (None if run.warn_at is None else
                                      round((run.warn_at - t0) * run.time_scale / 60, 2))
    if run.end_at is None:
        fig.missing(names, "", run.end_reason)
        return
    draw = _median([s for s in run.samples if s.get("state") == "recording"],
                   "battery_draw_mw")
    if run.warn_at is None:
        lead = 0.0
    elif run.warn_energy_mwh is not None and run.end_energy_mwh is not None and draw:
        # energy the unit itself read at the warning and at the end, spent at the recording
        # draw: immune to how late the bench's own samples were taken
        lead = (run.warn_energy_mwh - run.end_energy_mwh) / draw * 60
    else:
        lead = (run.end_at - run.warn_at) * run.time_scale / 60
    how = (f"recording time from the warning to {run.end_reason}: energy read at each, at "
           f"the recording draw (x{run.time_scale:g} battery time, start {run.start_pct:g} %)")
    fig.put("battery_warn_lead_min", round(lead, 2), "min",
            how if run.warn_at is not None else f"no warning before {run.end_reason}")
    fig.put("battery_warn_left_min", run.warn_left_min, "min",
            "the unit's own projection when it warned")
    fig.put("battery_died_unwarned", int(run.died and run.warn_at is None), "bool",
            run.end_reason)
    fig.put("battery_left_at_end_min", run.left_before_end_min, "min",
            f"the unit's projection in its last reading before {run.end_reason}")


def integrity_figures(fig: Figures, *, verify_ok: bool | None, verify_detail: str,
                      tamper: list[TamperResult], crash: CrashRun | None,
                      recovery_ok: bool | None, recovery_detail: str) -> None:
    """Verify, tamper suite and crash recovery as 0/1 figures with their stories."""
    fig.put("verify_ok", None if verify_ok is None else int(verify_ok), "bool", verify_detail)
    ran = [t for t in tamper if not t.detail.startswith("not run")]
    if ran:
        caught = sum(t.detected for t in ran)
        missed = [t.case for t in tamper if not t.detected]
        fig.put("tamper_all_detected", int(caught == len(tamper)), "bool",
                f"{caught}/{len(tamper)} cases caught" + (f"; missed: {', '.join(missed)}"
                                                          if missed else ""))
        fig.put("tamper_cases_detected", caught, "cases", "")
    else:
        fig.missing(("tamper_all_detected",), "bool", "no recording to tamper with")
    fig.series["tamper"] = [t.to_json() for t in tamper]
    if crash is None or not crash.measurable:
        fig.missing(("recovery_ok",), "bool",
                    crash.reason if crash is not None else "crash scenario not run")
    else:
        fig.put("recovery_ok", None if recovery_ok is None else int(recovery_ok), "bool",
                recovery_detail)
