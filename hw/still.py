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

__all__ = ["Still", "StillCapture", "encode_jpeg", "i420_from_padded"]


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


def i420_from_padded(buf: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    """A contiguous I420 picture (``height * 3/2`` rows of ``width``) from a padded YUV420 buffer.

    picamera2 returns a ``YUV420`` stream as ``height * 3/2`` rows of ``stride`` bytes, where
    ``stride`` is the width rounded up for the ISP (to 32 bytes on a Pi 4, 64 on a Pi 5: 1440
    and 854 pixel wide pictures are padded there). The buffer holds the Y plane (``height`` rows
    of ``stride``), then U and V, each ``height/2`` rows of ``stride/2``; so a chroma row is half
    a buffer row, and cutting every buffer row at ``width`` (right only when ``stride == width``)
    mixes chroma rows and garbles colour. The planes are split the way picamera2's own
    ``request.py`` does for JPEG: viewing the buffer as rows of ``stride/2``.
    """
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"I420 needs an even, positive size, got {width}x{height}")
    if buf.ndim != 2 or buf.shape[0] != height * 3 // 2:
        raise ValueError(f"expected {height * 3 // 2} rows of YUV420 for {width}x{height}, "
                         f"got an array of shape {buf.shape}")
    stride = buf.shape[1]
    if stride < width or stride % 2:
        raise ValueError(f"a stride of {stride} bytes cannot hold {width} pixels of YUV420")
    rows = np.ascontiguousarray(buf).reshape(buf.shape[0] * 2, stride // 2)
    y = buf[:height, :width]
    u = rows[2 * height : 2 * height + height // 2, : width // 2]
    v = rows[2 * height + height // 2 :, : width // 2]
    out = np.concatenate((y.reshape(-1), u.reshape(-1), v.reshape(-1)))
    return out.reshape(height * 3 // 2, width)


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
