"""One continuous MP4 of a whole recording, joined from its decrypted segments by stream copy.

Segments of a recording meet exactly (DESIGN §3 "As built"): each file's timeline starts at 0
at its first keyframe, whose CLOCK_MONOTONIC time is the signed manifest's
``media.video.first_pts_us``. So segment *i* belongs at ``first_pts_us[i] − first_pts_us[0]``
on the joined timeline, and every packet — video and audio, whose own first ``tfdt`` already
carries the audio start offset (docs/MEDIA.md) — is shifted by exactly that. Nothing is decoded
or re-encoded: the joined file holds the very same compressed frames, so its frame count is the
sum of the segments' (the bundle checker counts both).

The joined file is *derived* material for viewing; the segments and their manifests remain the
evidence. It is written as a plain (non-fragmented) MP4 so that every player measures its
duration right.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

__all__ = ["JoinError", "Joined", "join_segments"]


class JoinError(ValueError):
    """The segments cannot be joined into one timeline (different streams, overlap)."""


@dataclass(frozen=True, slots=True)
class Joined:
    """What was joined: packets per kind of stream and the timeline's length."""

    video_packets: int
    audio_packets: int
    duration_us: int


def _offset(us: int, time_base: Fraction) -> int:
    """``us`` microseconds in ticks of ``time_base`` (exact to one tick)."""
    return round(Fraction(us, 1_000_000) / time_base)


def join_segments(files: Sequence[Path], first_pts_us: Sequence[int], out: Path) -> Joined:
    """Remux ``files`` (in order) into ``out``, each placed at its manifest time (module doc)."""
    if not files or len(files) != len(first_pts_us):
        raise JoinError("nothing to join, or a segment without its start time")
    if any(b < a for a, b in itertools.pairwise(first_pts_us)):
        raise JoinError("segment start times go backwards")
    counts = {"video": 0, "audio": 0}
    end_us = 0
    with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as dst:
        outs: dict[str, Any] = {}
        last_dts: dict[str, int] = {}
        for path, start in zip(files, first_pts_us, strict=True):
            shift_us = start - first_pts_us[0]
            with av.open(str(path)) as src:
                kinds = {s.type: s for s in src.streams if s.type in ("video", "audio")}
                if not outs:
                    outs = {k: dst.add_stream_from_template(s) for k, s in kinds.items()}
                elif set(kinds) != set(outs):
                    raise JoinError(f"{path.name} has streams {sorted(kinds)}, the first segment "
                                    f"{sorted(outs)}")
                for packet in src.demux(list(kinds.values())):
                    if packet.dts is None or packet.size == 0:
                        continue
                    kind = packet.stream.type
                    tb = packet.time_base
                    assert tb is not None  # demuxed packets carry their stream's time base
                    shift = _offset(shift_us, tb)
                    packet.dts += shift
                    if packet.pts is not None:
                        packet.pts += shift
                    if packet.dts <= last_dts.get(kind, -(1 << 62)):
                        raise JoinError(f"{path.name}: {kind} overlaps the previous segment")
                    last_dts[kind] = packet.dts
                    end_us = max(end_us, int((packet.pts or packet.dts) * tb * 1_000_000))
                    packet.stream = outs[kind]
                    dst.mux(packet)
                    counts[kind] += 1
    return Joined(counts["video"], counts["audio"], end_us)
