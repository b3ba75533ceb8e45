"""The Pi camera's burned-in overlay: UTC capture time, device id and officer id in the picture.

:class:`hw.camera_pi.PiCamera` calls :meth:`PiOverlay.burn` from picamera2's ``pre_callback``,
before the encoders see the buffer (see the "Overlay" fact in :mod:`hw.camera_pi`'s docstring:
a slow callback delays every frame behind it). So the text mask is rendered at most once per
second and each frame costs one slice copy into the luma plane. Kept apart from the driver,
whose job is the camera's life cycle and its threads' bookkeeping: this is the one piece that
draws, with its own lock and cache. :meth:`PiOverlay.burn` raises on failure; the driver counts
the failure and keeps the exception from reaching picamera2's event loop.

Locking: ``_lock`` guards the officer id and the cached block (the officer id is written by the
controller, the block read and written by the camera thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from hw.font5x7 import render_text

__all__ = ["PiOverlay"]

_INK, _PAPER = 235, 16  # video-range white text on a black box


class PiOverlay:
    """Renders and burns the overlay text into YUV420 frames of one stream."""

    def __init__(self, *, device_id: str, officer_id: str, width: int, scale: int,
                 mapped_array: Any, sensor_timestamp: Any, wall: Callable[[], float],
                 mono_ns: Callable[[], int]) -> None:
        self._device_id = device_id
        self._officer_id = officer_id
        self._width = width
        self._scale = scale
        self._mapped_array = mapped_array  # picamera2.MappedArray
        self._sensor_timestamp = sensor_timestamp  # libcamera.controls.SensorTimestamp
        self._wall = wall
        self._mono_ns = mono_ns
        self._lock = threading.Lock()
        self._stamp_key: tuple[int, str] | None = None
        self._stamp_block: npt.NDArray[np.uint8] | None = None

    def set_officer(self, officer_id: str) -> None:
        """Change the officer id shown from the next frame on (any thread)."""
        with self._lock:
            self._officer_id = officer_id
            self._stamp_key = None

    def burn(self, request: Any) -> None:
        """Burn UTC time, device and officer into the luma plane of ``request``'s main stream
        (camera thread); raises whatever went wrong, for the caller to count and record."""
        block = self._overlay_block(self._capture_utc(request))
        s = self._scale
        with self._mapped_array(request, "main") as mapped:
            luma = mapped.array
            h, w = block.shape
            w = min(w, self._width - 2 * s)
            luma[s : s + h, s : s + w] = block[:, :w]

    def _capture_utc(self, request: Any) -> float:
        """UTC of the frame's capture: its SensorTimestamp mapped through the clocks now."""
        now_wall, now_mono = self._wall(), self._mono_ns()
        try:
            sensor_ns = int(request.request.metadata[self._sensor_timestamp])
        except Exception:  # metadata unavailable: stamping time is within a frame of it
            return now_wall
        return now_wall - (now_mono - sensor_ns) / 1e9

    def _overlay_block(self, utc: float) -> npt.NDArray[np.uint8]:
        """The rendered overlay for this second (rendered at most once per second)."""
        second = int(utc)
        with self._lock:
            officer = self._officer_id
            if self._stamp_key == (second, officer) and self._stamp_block is not None:
                return self._stamp_block
        stamp = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%d %H:%M:%S")
        mask = render_text(f"{stamp}Z {self._device_id} OFC {officer or '-'}", self._scale)
        block = np.where(mask, _INK, _PAPER).astype(np.uint8)
        with self._lock:
            if self._officer_id == officer:
                self._stamp_key, self._stamp_block = (second, officer), block
        return block
