"""One bench run: set the unit up, run the scenarios, read the evidence, judge, report.

With ``hw="sim"`` the bench owns the unit: it writes the configuration (the lab's, or the
shipped default, plus the clapper and any injected fault), runs the agent, kills it for the
crash test and runs a second, fast-forwarded unit for the battery rundown. With ``hw="pi"``
the unit is a service the bench only talks to: simulator stimuli are skipped with a clear
"not measurable on this unit", and the power cut is asked of the operator.
"""

from __future__ import annotations

import datetime as dt
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent import __version__
from agent.evidence.age import Identity
from agent.evidence.verify import verify
from hw.errors import ConfigError

from .c2pa_column import c2pa_rows, trust_anchors
from .deliverables import build_document, write_reports
from .figures import Figures, battery_figures, evidence_figures, integrity_figures, rundown_figures
from .night_figures import NIGHT_FIGURES, night_figures
from .progress import Progress
from .readback import Recording, check_credential, decode_segment, load_recordings
from .scenarios import CrashRun, RecordRun, crash_scenario, record_scenario, rundown_scenario
from .spec import Spec, judge
from .tamper import TamperResult, run_tamper_suite
from .unit import BenchError, ServiceUnit, SimUnit, StatusSampler, write_config

__all__ = ["FAULTS", "BenchOptions", "run_bench"]

_REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = _REPO / "config" / "default.toml"

#: Faults a simulated unit can be built with (``--fault NAME``), as config overrides; the
#: rundown-only fault is a stimulus (the battery dies at a level above the warning).
FAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "drop-100": {"sim": {"drop_every": 100}},
    "audio-delay-120": {"sim": {"audio_delay_ms": 120.0}},
    "gap-1s": {"sim": {"boundary_gap_ms": 1000}},
    "drift-10s": {"sim": {"gps_drift_ppm": 10 / 86_400 * 1e6}},
    "battery-early": {},
}
_RUNDOWN_SCALE = 120.0  # 1 s of bench time = 2 min of battery time
_RUNDOWN_START_PCT = 8.0
_EARLY_DEATH_PCT = 6.5  # dies with ~18 min projected: before any 15-min warning


@dataclass(slots=True)
class BenchOptions:
    """What ``bodycam bench`` was asked to do."""

    hw: str = "sim"
    minutes: float = 3.0
    specs: list[Spec] = field(default_factory=list)
    config: Path | None = None
    data_dir: Path | None = None
    report_dir: Path = Path("bench-report")
    faults: list[str] = field(default_factory=list)
    identity: Path | None = None
    c2pa_ca: Path | None = None  # agency CA for the segments' C2PA credentials
    rundown: bool = True
    crash: bool = True
    operator: Callable[[str], None] | None = None


def run_bench(opts: BenchOptions, progress: Progress) -> dict[str, Any]:
    """Run everything and write the reports; returns the report document."""
    for f in opts.faults:
        if f not in FAULTS:
            raise ConfigError(f"unknown fault {f!r}; known: {', '.join(FAULTS)}")
    if opts.hw == "pi" and opts.faults:
        raise ConfigError("faults can only be injected into a simulated unit (--hw sim)")
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    opts.report_dir.mkdir(parents=True, exist_ok=True)
    fig = Figures()
    run_unit = _run_sim if opts.hw == "sim" else _run_service
    meta = run_unit(opts, progress, fig)
    meta.update(started_utc=started, hw=opts.hw, minutes=opts.minutes, faults=opts.faults,
                version=__version__, specs=[s.path for s in opts.specs])
    verdicts = [v for s in opts.specs for v in judge(s, fig.values)]
    doc = build_document(meta=meta, fig=fig, verdicts=verdicts)
    write_reports(doc, opts.report_dir)
    return doc


def _sim_overrides(base: dict[str, Any], faults: list[str]) -> dict[str, dict[str, Any]]:
    sim = base.get("sim", {})
    over: dict[str, dict[str, Any]] = {
        "hardware": {"kind": "sim"},
        "mqtt": {"enabled": False},
        "sim": {"clapper_s": sim.get("clapper_s") or 2.0},
    }
    for f in faults:
        for section, values in FAULTS[f].items():
            over.setdefault(section, {}).update(values)
    return over


def _run_sim(opts: BenchOptions, progress: Progress, fig: Figures) -> dict[str, Any]:
    work = opts.data_dir or (opts.report_dir / "unit-under-test")
    if (work / "recordings").exists() and any((work / "recordings").iterdir()):
        raise ConfigError(f"{work} already holds recordings: give the bench an empty --data-dir")
    work.mkdir(parents=True, exist_ok=True)
    base_path = opts.config or (DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None)
    base = tomllib.loads(base_path.read_text()) if base_path else {}
    cfg_path = opts.report_dir / "unit.toml"
    cfg = write_config(base_path, _sim_overrides(base, opts.faults), cfg_path)
    rec_cfg = cfg.get("recording", {})
    prerecord_s = float(rec_cfg.get("prerecord_s", 30))
    segment_s = float(rec_cfg.get("segment_s", 60))
    unit = SimUnit(cfg_path, work / "data", opts.report_dir / "unit.log")
    progress.phase(f"starting the simulated unit ({work / 'data'})")
    unit.start()
    sampler = StatusSampler(unit)
    crash: CrashRun | None = None
    try:
        status = unit.wait_ready()
        sampler.start()
        run = record_scenario(unit, record_s=opts.minutes * 60, prerecord_s=prerecord_s,
                              progress=progress)
        if opts.crash:
            crash = crash_scenario(unit, segment_s=segment_s, progress=progress)
    finally:
        sampler.stop()
        unit.stop()
    run.samples = _until(sampler.samples(), run.ended_at)
    identity = Identity.from_file((unit.data_dir / "sim-agency.key").read_text())
    _analyse(fig, unit.data_dir, run, crash, identity=identity, progress=progress,
             c2pa_ca=opts.c2pa_ca)
    if opts.rundown:
        _rundown(opts, cfg_path, work, progress, fig)
    else:
        rundown_figures(fig, None, "battery rundown not requested")
    night_figures(fig, cfg.get("night", {}))
    return {"device_id": status.get("device_id"), "data_dir": str(unit.data_dir),
            "config": str(cfg_path), "config_text": cfg_path.read_text()}


def _rundown(opts: BenchOptions, cfg_path: Path, work: Path, progress: Progress,
             fig: Figures) -> None:
    rd_cfg = opts.report_dir / "rundown.toml"
    write_config(cfg_path, {"power": {"poll_s": 0.2},
                            "sim": {"time_scale": _RUNDOWN_SCALE, "battery_pct": 100.0},
                            "recording": {"prerecord_s": 2}}, rd_cfg)
    unit = SimUnit(rd_cfg, work / "rundown", opts.report_dir / "rundown.log")
    unit.start()
    try:
        rd = rundown_scenario(unit, time_scale=_RUNDOWN_SCALE, start_pct=_RUNDOWN_START_PCT,
                              die_at_pct=_EARLY_DEATH_PCT if "battery-early" in opts.faults
                              else None, progress=progress)
    except BenchError as exc:
        rundown_figures(fig, None, f"rundown failed: {exc}")
        return
    finally:
        unit.stop()
    rundown_figures(fig, rd)
    progress.note(f"rundown: {rd.end_reason}; warning lead "
                  f"{fig.values['battery_warn_lead_min'].value} min")


def _run_service(opts: BenchOptions, progress: Progress, fig: Figures) -> dict[str, Any]:
    unit = ServiceUnit(opts.data_dir or Path("/var/lib/bodycam"))
    cfg: dict[str, Any] = tomllib.loads(opts.config.read_text()) if opts.config else {}
    rec_cfg = cfg.get("recording", {})
    progress.phase(f"connecting to the unit ({unit.data_dir})")
    status = unit.wait_ready(timeout=20)
    sampler = StatusSampler(unit)
    sampler.start()
    crash: CrashRun | None = None
    try:
        run = record_scenario(unit, record_s=opts.minutes * 60,
                              prerecord_s=float(rec_cfg.get("prerecord_s", 30)),
                              progress=progress)
        if opts.crash:
            crash = crash_scenario(unit, segment_s=float(rec_cfg.get("segment_s", 60)),
                                   progress=progress, ask_operator=opts.operator)
    finally:
        sampler.stop()
    run.samples = _until(sampler.samples(), run.ended_at)
    identity: list[Identity] = []
    if opts.identity is not None:
        identity = Identity.from_file(opts.identity.read_text())
    _analyse(fig, unit.data_dir, run, crash, identity=identity, progress=progress,
             c2pa_ca=opts.c2pa_ca)
    rundown_figures(fig, None, "not measurable on this unit: the battery cannot be fast-"
                               "forwarded (run a real discharge and read the log)")
    fig.missing(NIGHT_FIGURES, "", "not measurable here: the light cannot be fast-forwarded "
                "(read the unit's night_vision log events over a real dusk)")
    return {"device_id": status.get("device_id"), "data_dir": str(unit.data_dir),
            "config_text": opts.config.read_text() if opts.config else "(the unit's own)"}


def _analyse(fig: Figures, data_dir: Path, run: RecordRun, crash: CrashRun | None, *,
             identity: list[Identity], progress: Progress, c2pa_ca: Path | None = None) -> None:
    progress.phase("reading the evidence back")
    recs = {r.recording_id: r for r in load_recordings(data_dir)}
    main = recs.get(str(run.recording_id))
    if main is None:
        raise BenchError(f"recording {run.recording_id} not found in {data_dir}")
    anchors = trust_anchors(data_dir, c2pa_ca)
    if identity:
        for i, seg in enumerate(main.segments):
            progress.tick(f"decoding segment {i + 1}/{len(main.segments)}")
            decode_segment(seg, identity, c2pa_anchors=anchors)
        evidence_figures(fig, main, run)
    else:
        fig.missing(("video_width", "video_height", "video_fps", "frames_dropped",
                     "frames_duplicated", "frame_interval_jitter_ms", "segment_gap_ms_max",
                     "av_offset_ms_max", "av_offset_ms_min", "preroll_captured_s"), "",
                    "media not readable: give the agency identity with --identity")
    for seg in main.segments:
        if seg.c2pa is None:  # not decrypted: the check that needs no plaintext
            seg.c2pa = check_credential(seg, None, anchors)
    fig.series["segments"] = c2pa_rows(main.segments)
    battery_figures(fig, run, measured_bps=_stored_bps(main))
    progress.phase("integrity: verify and the tamper suite")
    report = verify(data_dir, identity=identity)
    fails = report.failures
    detail = "verify passed" if report.ok else "; ".join(f"{f.code}: {f.message}"
                                                         for f in fails[:3])
    tamper: list[TamperResult] = []
    if len(main.segments) >= 2:
        victim = main.segments[len(main.segments) // 2]
        manifest = victim.media_path.with_name(
            victim.media_path.name.replace(".mp4.age", ".manifest.json"))
        tamper = run_tamper_suite(data_dir, manifest, identity=identity,
                                  old_checkpoint=run.old_checkpoint)
    ok, why = _recovery(crash, recs, report.ok)
    integrity_figures(fig, verify_ok=report.ok, verify_detail=detail, tamper=tamper,
                      crash=crash, recovery_ok=ok, recovery_detail=why)


def _until(samples: list[dict[str, Any]], end: float | None) -> list[dict[str, Any]]:
    """The samples of the main scenario (the crash test restarts the unit's clock estimates)."""
    return [s for s in samples if end is None or s["t"] <= end]


def _stored_bps(rec: Recording) -> float | None:
    stored = sum(int(s.manifest.get("file", {}).get("cipher_bytes", 0)) for s in rec.segments)
    dur = sum(int(s.manifest.get("media", {}).get("duration_us", 0)) for s in rec.segments)
    return stored * 8e6 / dur if dur > 0 else None


def _recovery(crash: CrashRun | None, recs: dict[str, Recording],
              verify_ok: bool) -> tuple[bool | None, str]:
    if crash is None or not crash.measurable:
        return None, ""
    rec = recs.get(str(crash.recording_id))
    if rec is None:
        return False, f"the interrupted recording {crash.recording_id} left no segment at all"
    flags = rec.flags
    sealed = [s for s in rec.segments if "recovered" not in s.manifest.get("flags", [])]
    problems = []
    if "recovered" not in flags:
        problems.append("no segment flagged 'recovered'")
    if len(sealed) < crash.sealed_before:
        problems.append(f"{crash.sealed_before} segments were sealed before the cut, "
                        f"{len(sealed)} remain")
    if not verify_ok:
        problems.append("verify fails after recovery")
    story = (f"{len(rec.segments)} segments, flags {sorted(flags)}, back after "
             f"{crash.came_back_s} s")
    return (not problems), ("; ".join(problems) + " — " if problems else "") + story


def print_operator(message: str) -> None:
    """Ask the operator to act (on stderr, loud) -- used with --hw pi."""
    print(f"\n*** OPERATOR: {message}\n", file=sys.stderr, flush=True)
