"""Still pictures: the stills-camera profile's evidence unit.

A press on a stills camera captures one full-resolution picture, JPEG-encoded here from the
camera's YUV 4:2:0 planes with libav's MJPEG encoder (the same library that muxes video, so
no imaging dependency is added), and sealed like a segment: hashed, encrypted, signed, logged.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Protocol, runtime_checkable

import av
import numpy as np
import numpy.typing as npt

__all__ = ["Still", "StillCapture", "encode_jpeg"]


@dataclass(frozen=True, slots=True)
class Still:
    """One captured picture."""

    jpeg: bytes
    width: int
    height: int
    mono_us: int


@runtime_checkable
class StillCapture(Protocol):
    """A camera that can also take a full-resolution still while its encoder runs."""

    def capture_still(self) -> Still:
        """Capture and JPEG-encode one picture (called from the controller thread)."""
        ...


def encode_jpeg(i420: npt.NDArray[np.uint8], width: int, height: int, *, quality: int = 3) -> bytes:
    """JPEG of an I420 picture given as a (height × 3/2, width) array; quality 2 (best)..31."""
    frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
    enc = av.CodecContext.create("mjpeg", "w")
    enc.width, enc.height = width, height
    enc.pix_fmt = "yuvj420p"
    enc.time_base = Fraction(1, 1)
    enc.options = {"qmin": str(quality), "qmax": str(quality)}
    frame = frame.reformat(format="yuvj420p")
    packets = list(enc.encode(frame)) + list(enc.encode(None))
    return b"".join(bytes(p) for p in packets)


def now_us() -> int:
    """CLOCK_MONOTONIC in µs (the capture instant of a still)."""
    return time.monotonic_ns() // 1000
