"""Stills from the Pi camera: planes taken out of padded YUV420 buffers, and a bounded wait.

picamera2 hands a YUV420 still over as ``height * 3/2`` rows of ``stride`` bytes, the stride
being the width rounded up to 32 bytes (Pi 4) or 64 (Pi 5). The buffers here are built the way
libcamera lays them out -- Y rows of ``stride``, then U and V rows of ``stride/2`` -- with the
padding filled with a value that appears nowhere in the picture, so any padding byte that leaks
into the output is caught.
"""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import Future
from typing import Any

import av
import numpy as np
import numpy.typing as npt
import pytest

from hw.camera import VideoFormat
from hw.errors import CameraError, CameraStalled
from hw.still import encode_jpeg, i420_from_padded

PAD = 0xEE


def _planes(width: int, height: int) -> tuple[npt.NDArray[np.uint8], ...]:
    """Y, U and V planes with distinct, position-dependent contents."""
    yy, xx = np.mgrid[0:height, 0:width]
    y = ((xx + 3 * yy) % 200 + 16).astype(np.uint8)
    cy, cx = np.mgrid[0 : height // 2, 0 : width // 2]
    u = ((cx * 7 + cy) % 100 + 20).astype(np.uint8)
    v = ((cx + cy * 5) % 100 + 130).astype(np.uint8)
    return y, u, v


def _padded(y: npt.NDArray[np.uint8], u: npt.NDArray[np.uint8], v: npt.NDArray[np.uint8],
            stride: int) -> npt.NDArray[np.uint8]:
    """The (height * 3/2, stride) array picamera2 returns for these planes."""
    height = y.shape[0]

    def rows(plane: npt.NDArray[np.uint8], pitch: int) -> npt.NDArray[np.uint8]:
        out = np.full((plane.shape[0], pitch), PAD, dtype=np.uint8)
        out[:, : plane.shape[1]] = plane
        return out.reshape(-1)

    flat = np.concatenate((rows(y, stride), rows(u, stride // 2), rows(v, stride // 2)))
    return flat.reshape(height * 3 // 2, stride)


@pytest.mark.parametrize(("width", "height", "stride"), [
    (854, 480, 896),     # Pi 5: 64-byte rows
    (854, 480, 864),     # Pi 4: 32-byte rows
    (1440, 1080, 1472),  # Pi 5
    (640, 480, 640),     # no padding at all
])
def test_planes_come_out_whole_whatever_the_stride(width: int, height: int, stride: int) -> None:
    """Y, U and V come out exactly, with no padding byte in them."""
    y, u, v = _planes(width, height)
    i420 = i420_from_padded(_padded(y, u, v, stride), width, height)
    assert i420.shape == (height * 3 // 2, width) and i420.flags.c_contiguous
    flat = i420.reshape(-1)
    assert np.array_equal(flat[: width * height], y.reshape(-1))
    assert np.array_equal(flat[width * height : width * height * 5 // 4], u.reshape(-1))
    assert np.array_equal(flat[width * height * 5 // 4 :], v.reshape(-1))
    assert PAD not in flat


def test_cutting_rows_at_the_width_was_wrong_when_rows_are_padded() -> None:
    """The old slice (every row cut at the width) mixes chroma rows once stride > width."""
    y, u, v = _planes(854, 480)
    buf = _padded(y, u, v, 896)
    naive = np.ascontiguousarray(buf[:, :854])
    assert not np.array_equal(naive, i420_from_padded(buf, 854, 480))


def test_a_red_picture_stays_red_through_the_jpeg() -> None:
    """A uniform red picture in a Pi 5 buffer decodes red in every pixel (no padding leaks into
    the chroma; the old row slicing left streaks of blue here)."""
    width, height, stride = 854, 480, 896
    y = np.full((height, width), 81, dtype=np.uint8)  # BT.601 video-range red
    u = np.full((height // 2, width // 2), 90, dtype=np.uint8)
    v = np.full((height // 2, width // 2), 240, dtype=np.uint8)
    buf = _padded(y, u, v, stride)  # padding bytes 0xEE: far from the picture's colour
    jpeg = encode_jpeg(i420_from_padded(buf, width, height), width, height)
    with av.open(io.BytesIO(jpeg)) as container:
        rgb = next(container.decode(video=0)).to_ndarray(format="rgb24")
    worst = np.abs(rgb.astype(int) - (255, 0, 0)).max(axis=(0, 1))
    assert (worst < 30).all(), f"pixels off red by up to {worst} (R, G, B)"


@pytest.mark.parametrize(("shape", "words"), [
    ((719, 640), "expected 720 rows"),
    ((720, 600), "cannot hold 640 pixels"),
    ((720, 641), "cannot hold 640 pixels"),
])
def test_buffers_that_do_not_fit_are_refused(shape: tuple[int, int], words: str) -> None:
    """A buffer of the wrong shape is a ValueError naming the mismatch, never a wrong picture."""
    with pytest.raises(ValueError, match=words):
        i420_from_padded(np.zeros(shape, dtype=np.uint8), 640, 480)


class _StalledPicamera2:
    """Stands in for Picamera2 on a pipeline that never completes a request: capture_array
    blocks on its job's future exactly as picamera2's ``dispatch_functions`` does."""

    def __init__(self) -> None:
        self.jobs: list[Future[Any]] = []
        self.flushed = threading.Event()

    def capture_array(self, name: str = "main", wait: Any = None) -> Any:
        job: Future[Any] = Future()
        self.jobs.append(job)
        timeout = None if wait is True or wait is None else wait
        return job.result(timeout=timeout)

    def cancel_all_and_flush(self) -> None:
        for job in self.jobs:
            job.cancel()
        self.jobs.clear()
        self.flushed.set()


def _pi_camera(picam2: Any, still_timeout_s: float) -> Any:
    from hw.camera_pi import PiCamera

    cam = PiCamera.__new__(PiCamera)  # no libcamera here: the still path only needs these
    cam._picam2 = picam2
    cam._format = VideoFormat(width=640, height=480, fps=30, bitrate=1_000_000, profile="high", gop=30)
    cam._still_timeout_s = still_timeout_s
    return cam


def test_still_on_a_stalled_pipeline_times_out_as_a_stall() -> None:
    """The still gives up after still_timeout_s with CameraStalled and cancels its job."""
    picam2 = _StalledPicamera2()
    cam = _pi_camera(picam2, 0.3)
    t0 = time.monotonic()
    with pytest.raises(CameraStalled, match=r"no picture within 0\.3 s"):
        cam.capture_still()
    assert time.monotonic() - t0 < 2.0
    assert picam2.flushed.is_set() and not picam2.jobs
    assert issubclass(CameraStalled, CameraError)


def test_still_from_a_padded_buffer_is_encoded() -> None:
    """A completed capture with a padded buffer gives a JPEG of the stream's size."""

    class _Picamera2:
        def capture_array(self, name: str = "main", wait: Any = None) -> Any:
            assert wait == 1.0
            return _padded(*_planes(640, 480), 704)

    still = _pi_camera(_Picamera2(), 1.0).capture_still()
    assert (still.width, still.height) == (640, 480)
    assert still.jpeg[:2] == b"\xff\xd8"
