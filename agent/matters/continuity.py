"""Continuity: is a recording one whole, and where is it not?

A recording is continuous when its segments run ``0..n`` without holes, each one starting
where the previous ended (within one frame interval, by the start pair and by the first video
timestamp), no frames missing inside one, none ``truncated``, ``recovered`` or sealed after a
``fault``. Every break is a :class:`Discontinuity` naming the segment and saying, in plain
language, what is missing. :mod:`agent.matters.coverage` reports these beside the checklist.

Manifests are read as data here (their signatures are checked by ``bodycam verify``): a field
of the wrong type counts as absent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["Discontinuity", "continuity", "segment_part"]

_BROKEN_FLAGS: Final = {
    "truncated": "truncated (sealed after a crash; its end is lost)",
    "recovered": "recovered after a crash",
    "fault": "sealed after a recorder fault",
}
_AAC_FRAME: Final = 1024


@dataclass(frozen=True, slots=True)
class Discontinuity:
    """Why the recording is not one continuous whole, at one place."""

    seq: int
    kind: str  # missing_segments | gap | overlap | missing_frames | truncated | recovered | fault
    detail: str

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"seq": self.seq, "kind": self.kind, "detail": self.detail}


def continuity(segs: Sequence[Mapping[str, Any]]) -> list[Discontinuity]:
    """Every break of one whole in ``segs`` (manifests of one recording, in ``seq`` order)."""
    out: list[Discontinuity] = []
    tol = _frame_interval_us(segs)
    first = int(segs[0]["seq"])
    if first != 0:
        out.append(Discontinuity(first, "missing_segments",
                                 f"segments 0..{first - 1} are missing before segment {first}"))
    prev: Mapping[str, Any] | None = None
    for seg in segs:
        seq = int(seg["seq"])
        for flag in seg.get("flags") or ():
            if flag in _BROKEN_FLAGS:
                out.append(Discontinuity(seq, flag, f"segment {seq} {_BROKEN_FLAGS[flag]}"))
        video = (seg.get("media") or {}).get("video") or {}
        lost = video.get("missing_frames")
        if isinstance(lost, int) and lost > 0:
            out.append(Discontinuity(seq, "missing_frames",
                                     f"{lost} frame(s) missing inside segment {seq}"))
        if prev is not None:
            out.extend(_boundary(prev, seg, tol))
        prev = seg
    return out


def _boundary(prev: Mapping[str, Any], seg: Mapping[str, Any], tol: int) -> list[Discontinuity]:
    seq, pseq = int(seg["seq"]), int(prev["seq"])
    if seq != pseq + 1:
        missing = f"{pseq + 1}" if seq == pseq + 2 else f"{pseq + 1}..{seq - 1}"
        return [Discontinuity(seq, "missing_segments",
                              f"segment(s) {missing} missing between {pseq} and {seq}")]
    prev_end = segment_part(prev, "end").get("mono_us")
    if not isinstance(prev_end, int):
        return []  # a truncated segment has no end; its flag already says so
    worst = 0
    for start in (segment_part(seg, "start").get("mono_us"),
                  ((seg.get("media") or {}).get("video") or {}).get("first_pts_us")):
        if isinstance(start, int) and abs(start - prev_end) > abs(worst):
            worst = start - prev_end
    if worst > tol:
        return [Discontinuity(seq, "gap", f"{_ms(worst)} not recorded between segment {pseq} "
                              f"and {seq} (tolerance {_ms(tol)})")]
    if worst < -tol:
        return [Discontinuity(seq, "overlap", f"segment {seq} starts {_ms(-worst)} before "
                              f"segment {pseq} ends (tolerance {_ms(tol)})")]
    return []


def _frame_interval_us(segs: Sequence[Mapping[str, Any]]) -> int:
    """One frame of the recording: video frame, else AAC frame, else 1 ms."""
    for seg in segs:
        media = seg.get("media") or {}
        video, audio = media.get("video") or {}, media.get("audio") or {}
        fps, rate = video.get("fps"), audio.get("sample_rate")
        if isinstance(fps, int) and fps > 0:
            return -(-1_000_000 // fps)
        if isinstance(rate, int) and rate > 0:
            return -(-_AAC_FRAME * 1_000_000 // rate)
    return 1000


def segment_part(seg: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """The object ``seg[key]`` (``start``, ``end``), or an empty one when absent or not one."""
    value = seg.get(key)
    return value if isinstance(value, Mapping) else {}


def _ms(us: int) -> str:
    return f"{us / 1000:.1f} ms"
