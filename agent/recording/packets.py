"""Encoded media as the recorder holds it: packets with monotonic timestamps.

Video and audio leave their encoders as :class:`MediaPacket` objects whose ``pts_us`` is on
``CLOCK_MONOTONIC``; the pre-event ring and the segment writer only ever move these, never
raw frames. Helpers here read H.264 Annex-B just enough to find SPS/PPS for a segment header.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["MediaPacket", "h264_parameter_sets", "split_annexb"]

Kind = Literal["video", "audio"]

_NAL_SPS, _NAL_PPS = 7, 8


@dataclass(frozen=True, slots=True)
class MediaPacket:
    """One encoded access unit (video) or AAC frame (audio)."""

    kind: Kind
    data: bytes
    pts_us: int
    duration_us: int
    keyframe: bool = False
    index: int = -1  # camera frame counter for video; -1 for audio


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (start codes removed)."""
    units: list[bytes] = []
    i, n = 0, len(data)
    starts: list[tuple[int, int]] = []
    while i < n - 2:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        starts.append((j, j + 3))
        i = j + 3
    for k, (_, payload) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else n
        unit = data[payload:end]
        # a 4-byte start code leaves one zero byte at the end of the previous unit
        units.append(unit.rstrip(b"\x00") if k + 1 < len(starts) else unit)
    return [u for u in units if u]


def h264_parameter_sets(access_unit: bytes) -> bytes | None:
    """SPS and PPS of a keyframe as Annex-B extradata, or None if it carries neither."""
    found = [u for u in split_annexb(access_unit) if u[0] & 0x1F in (_NAL_SPS, _NAL_PPS)]
    if not any(u[0] & 0x1F == _NAL_SPS for u in found):
        return None
    return b"".join(b"\x00\x00\x00\x01" + u for u in found)
