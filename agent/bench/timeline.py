"""Measurements on one recording's timeline: frame cadence, segment gaps, A/V sync, pre-roll.

Pure functions over decoded :class:`~agent.bench.readback.Recording` objects, so each figure can
be checked against a timeline built by hand.

Conventions:

* a frame interval more than 1.5 nominal intervals long hides ``round(dt / nominal) - 1``
  dropped frames; one shorter than half an interval (or going backwards) is a duplicate;
* jitter is the 99th percentile of ``|dt - nominal|`` over the intervals that are neither;
* a segment gap is the media missing between segments: the next segment's first frame minus
  (the previous segment's last frame + one interval); 0 for a seamless roll. Differences
  below 1 ms are timestamp rounding (MP4 stores 90 kHz ticks), not missing media;
* A/V offset is ``beep onset - flash instant``, positive when sound lags picture. The flash
  instant lies within the frame interval before the first lit frame's timestamp, so the bench
  takes that interval's middle: each offset carries ±½ frame of quantisation.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass, field

from .readback import Recording

_ROUNDING_US = 1000  # container timestamp rounding, well below one frame

__all__ = ["AvPair", "Cadence", "av_pairs", "cadence", "nominal_interval_us", "segment_gaps"]


@dataclass(slots=True)
class Cadence:
    """Frame cadence over a whole recording, boundaries included."""

    frames: int
    nominal_us: float
    dropped: int
    duplicated: int
    jitter_p99_ms: float
    jitter_max_ms: float
    delivered_fps: float
    intervals_ms: list[float] = field(default_factory=list)
    drop_times_s: list[float] = field(default_factory=list)  # since the first frame


@dataclass(frozen=True, slots=True)
class AvPair:
    """A flash and the beep paired with it."""

    t_s: float  # since the recording's first frame
    flash_us: int
    beep_us: int
    offset_ms: float


def nominal_interval_us(rec: Recording) -> float:
    """The frame interval the unit claims (manifest fps)."""
    fps = int(rec.segments[0].manifest.get("media", {}).get("video", {}).get("fps", 0)) or 30
    return 1_000_000 / fps


def cadence(rec: Recording) -> Cadence:
    """Dropped and duplicated frames and jitter across the whole recording."""
    nominal = nominal_interval_us(rec)
    pts = [p for s in rec.segments for p in s.video_pts_us]
    out = Cadence(frames=len(pts), nominal_us=nominal, dropped=0, duplicated=0,
                  jitter_p99_ms=0.0, jitter_max_ms=0.0, delivered_fps=0.0)
    if len(pts) < 2:
        return out
    deviations: list[float] = []
    for a, b in itertools.pairwise(pts):
        dt = b - a
        out.intervals_ms.append(dt / 1000)
        if dt <= nominal / 2:
            out.duplicated += 1
        elif dt > 1.5 * nominal:
            out.dropped += round(dt / nominal) - 1
            out.drop_times_s.append((a - pts[0]) / 1e6)
        else:
            deviations.append(abs(dt - nominal) / 1000)
    if deviations:
        deviations.sort()
        out.jitter_p99_ms = round(deviations[min(len(deviations) - 1,
                                                 int(0.99 * len(deviations)))], 3)
        out.jitter_max_ms = round(deviations[-1], 3)
    span = pts[-1] - pts[0]
    out.delivered_fps = round((len(pts) - 1) * 1e6 / span, 3) if span > 0 else 0.0
    return out


def segment_gaps(rec: Recording) -> list[tuple[int, float]]:
    """``(seq of the later segment, media missing in ms)`` for every roll in the recording."""
    nominal = nominal_interval_us(rec)
    gaps: list[tuple[int, float]] = []
    for prev, nxt in itertools.pairwise(rec.segments):
        if not prev.video_pts_us or not nxt.video_pts_us:
            continue
        missing = nxt.video_pts_us[0] - (prev.video_pts_us[-1] + nominal)
        gap_ms = round(missing / 1000, 3) if missing >= _ROUNDING_US else 0.0
        gaps.append((int(nxt.manifest["seq"]), gap_ms))
    return gaps


def _flashes(rec: Recording) -> list[int]:
    """Timestamps of the first lit frame of each flash."""
    pts = [p for s in rec.segments for p in s.video_pts_us]
    luma = [v for s in rec.segments for v in s.luma]
    if len(luma) < 3:
        return []
    base, top = statistics.median(luma), max(luma)
    if top - base < 50:  # nothing flashed
        return []
    cut = (base + top) / 2
    out: list[int] = []
    lit_before = False
    for p, v in zip(pts, luma, strict=True):
        lit = v >= cut
        if lit and not lit_before:
            out.append(p)
        lit_before = lit
    return out


def av_pairs(rec: Recording, *, window_us: int = 500_000) -> list[AvPair]:
    """Pair each flash with the nearest beep within ``window_us``; unpaired ones are left out."""
    nominal = nominal_interval_us(rec)
    beeps = sorted(b for s in rec.segments for b in s.beeps_us)
    first = rec.segments[0].video_pts_us[0] if rec.segments[0].video_pts_us else 0
    pairs: list[AvPair] = []
    for flash in _flashes(rec):
        instant = flash - nominal / 2
        near = min(beeps, key=lambda b: abs(b - instant), default=None)
        if near is None or abs(near - instant) > window_us:
            continue
        pairs.append(AvPair(round((flash - first) / 1e6, 3), flash, near,
                            round((near - instant) / 1000, 2)))
    return pairs
