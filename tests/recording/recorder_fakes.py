"""Fakes for the recorder's rule tests: a port that keeps segments in memory and says what it
was asked, and real H.264 access units (a small ffmpeg clip) for the real segment writer.

Each "manifest" the port seals is a plain dict of what the recorder decided (seq, start, end,
flags) and what the writer muxed (frames, first and last pts, audio, out-of-order drops).
"""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.recording.packets import MediaPacket
from agent.recording.segment import SegmentStats
from hw.camera_replay import load_clip

FPS = 25
FRAME_US = 1_000_000 // FPS
GOP = 10  # a keyframe every 0.4 s
BASE_US = 10_000_000
AAC_US = 1024 * 1_000_000 // 48_000
AAC = b"\x21\x00\x49\x90\x02\x19\x00\x23\x80"  # one silent AAC frame (mono, 48 kHz)


def h264_units(tmp: Path) -> list[tuple[bytes, bool]]:
    """Two seconds of camera-like H.264 (IDR every :data:`GOP` frames, no B-frames)."""
    path = tmp / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=160x120:rate={FPS}", "-t", "2", "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", str(GOP), "-keyint_min", str(GOP),
                    "-sc_threshold", "0", "-bf", "0", "-pix_fmt", "yuv420p", str(path)],
                   check=True, timeout=60)
    units = list(load_clip(path).frames)
    assert [key for _, key in units] == [i % GOP == 0 for i in range(len(units))]
    return units


class Camera:
    """Video packets in camera order: frame ``i`` at ``BASE_US + i * FRAME_US``."""

    def __init__(self, units: list[tuple[bytes, bool]]) -> None:
        self.units = units

    def frame(self, i: int, *, pts_us: int | None = None) -> MediaPacket:
        data, key = self.units[i % len(self.units)]
        return MediaPacket("video", data, BASE_US + i * FRAME_US if pts_us is None else pts_us,
                           FRAME_US, key, i)


def audio(pts_us: int) -> MediaPacket:
    """One AAC frame at ``pts_us``."""
    return MediaPacket("audio", AAC, pts_us, AAC_US)


@dataclass
class Handle:
    seq: int
    start_mono_us: int
    flags: list[str]
    sink: io.BytesIO = field(default_factory=io.BytesIO)


class MemoryPort:
    """Segments into memory; ``opened`` and ``sealed`` say what the recorder asked for."""

    def __init__(self) -> None:
        self.opened: list[Handle] = []
        self.sealed_manifests: list[dict[str, Any]] = []
        self.calls: list[str] = []

    def open_segment(self, *, recording_id: str, seq: int, start_mono_us: int,
                     flags: list[str]) -> Handle:
        self.calls.append(f"open:{seq}")
        self.opened.append(Handle(seq, start_mono_us, list(flags)))
        return self.opened[-1]

    def sync(self, handle: Handle) -> None:
        self.calls.append(f"sync:{handle.seq}")

    def seal(self, handle: Any, **kw: Any) -> dict[str, Any]:
        raise AssertionError("the recorder seals in two steps")

    def seal_later(self, handle: Handle, *, end_mono_us: int, flags: list[str],
                   bookmarks: list[dict[str, Any]]) -> Callable[[SegmentStats, list[str]], Any]:
        self.calls.append(f"seal_later:{handle.seq}")

        def finish(stats: SegmentStats, extra: list[str]) -> dict[str, Any]:
            self.calls.append(f"seal:{handle.seq}")
            return {"seq": handle.seq, "start": handle.start_mono_us, "end": end_mono_us,
                    "flags": [*flags, *extra], "frames": stats.frames,
                    "first_pts_us": stats.first_pts_us, "last_pts_us": stats.last_pts_us,
                    "first_index": stats.first_index, "last_index": stats.last_index,
                    "audio_packets": stats.audio_packets, "audio_end_us": stats.audio_end_us,
                    "out_of_order": stats.out_of_order, "bytes": len(handle.sink.getvalue())}

        return finish

    def sealed(self, result: Any) -> dict[str, Any]:
        self.calls.append(f"sealed:{result['seq']}")
        self.sealed_manifests.append(dict(result))
        return dict(result)

    def abandon(self, handle: Handle) -> None:
        self.calls.append(f"abandon:{handle.seq}")
