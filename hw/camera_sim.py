"""Simulated camera: real H.264 from synthetic frames, paced in real time (or faster).

It stands beside the picamera2 driver the way gpiozero's ``MockFactory`` stands beside real
pins: the recorder, the tests and the off-Pi agent all consume the same encoded access units
a Pi would produce (Annex-B, SPS/PPS repeated on every IDR, no B-frames, fixed GOP), so the
muxing, pre-roll and evidence paths are exercised for real.

The picture carries a burned-in overlay (UTC time, device id, officer id, frame counter) and,
when ``clapper_s`` is set, turns white for one frame at every multiple of ``clapper_s`` on the
monotonic clock; :class:`hw.audio_sim.SimMicrophone` beeps at the same instants, so a bench can
measure audio/video sync from the recording itself.

Frames are paced and stamped on a :class:`hw.sim_clock.MediaClock`: real time by default; at
``speed`` N, N times faster at the nominal frame period (for as long as libx264 keeps up -- a
frame the encoder is late for is dropped, as a real sensor's is).

Stimulus verbs (thread-safe): :meth:`stall`, :meth:`resume`, :meth:`drop_every`,
:meth:`set_officer`, and :attr:`light` (a :class:`hw.light_sim.SimLight`: day/night cycle,
torch). Each frame samples the light, as a Pi's per-frame ``Lux`` metadata does, for
:meth:`lux`. History: :attr:`frames_delivered`, :attr:`frames_dropped`.

Locking: ``_lock`` guards the stimulus state; the capture thread copies it once per frame.
Everything else is owned by the capture thread.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from fractions import Fraction

import av
import numpy as np
import numpy.typing as npt

from hw.camera import EncodedFrame, FrameSink, VideoFormat
from hw.camera_thread import ThreadedCamera
from hw.font5x7 import render_text
from hw.light_sim import SimLight
from hw.sim_clock import MediaClock
from hw.still import Still, encode_jpeg

__all__ = ["DroppingCamera", "SimCamera", "StallingCamera"]

_US = Fraction(1, 1_000_000)


class SimCamera(ThreadedCamera):
    """A camera whose sensor is a frame generator and whose encoder is libx264."""

    _thread_name = "sim-camera"

    def __init__(
        self,
        *,
        width: int = 1920,
        height: int = 1080,
        fps: int = 30,
        bitrate: int = 8_000_000,
        gop: int = 30,
        device_id: str = "",
        officer_id: str = "",
        overlay: bool = True,
        clapper_s: float = 0.0,
        mono_ns: Callable[[], int] = time.monotonic_ns,
        wall: Callable[[], float] = time.time,
        light: SimLight | None = None,
        clock: MediaClock | None = None,
    ) -> None:
        """``clock`` paces and stamps the frames (default: real time on ``mono_ns``)."""
        super().__init__(VideoFormat(width=width, height=height, fps=fps, bitrate=bitrate,
                                     profile="baseline", gop=gop), mono_ns=mono_ns)
        self.light = light or SimLight()
        self._clock = clock or MediaClock(1.0, mono_ns=mono_ns)
        self._lux: float | None = None
        self._device_id = device_id
        self._officer_id = officer_id
        self._overlay = overlay
        self._clapper_ns = int(clapper_s * 1e9)
        self._wall = wall
        self._drop_every = 0
        self._cpu_s = 0.0
        self._bg = self._background()
        self._noise = self._sensor_noise()
        self._chroma = np.full((height // 2, width), 128, dtype=np.uint8)
        self._scale = max(1, height // 270)

    # --- contract ---------------------------------------------------------------------------
    def lux(self) -> float | None:
        """The light estimate of the latest frame (None before the first one)."""
        return self._lux

    @property
    def cpu_seconds(self) -> float:
        """CPU time the capture thread (frame synthesis + libx264) has used, for benchmarks
        that must separate the simulator's cost from the recorder's."""
        return self._cpu_s

    # --- stimuli ----------------------------------------------------------------------------
    def drop_every(self, n: int) -> None:
        """Drop every n-th frame (0 = none), as an overloaded sensor pipeline would."""
        with self._lock:
            self._drop_every = max(0, n)

    def set_officer(self, officer_id: str) -> None:
        """Change the officer id drawn in the overlay."""
        with self._lock:
            self._officer_id = officer_id

    def capture_still(self) -> Still:
        """A full-resolution picture of the current scene, JPEG-encoded (stills profile)."""
        fmt = self._format
        mono = self._clock.now_ns()
        i420 = self._i420(self._delivered, mono, flash=False)
        return Still(encode_jpeg(i420, fmt.width, fmt.height), fmt.width, fmt.height, mono // 1000)

    # --- internals --------------------------------------------------------------------------
    def _background(self) -> npt.NDArray[np.uint8]:
        h, w = self._format.height, self._format.width
        ramp = np.linspace(40, 180, w, dtype=np.float32)
        rows = np.linspace(0, 30, h, dtype=np.float32)[:, None]
        return (ramp[None, :] + rows).astype(np.uint8)

    def _sensor_noise(self) -> list[npt.NDArray[np.uint8]]:
        """A few frames of sensor grain, cycled: real pictures are never flat, and the
        bitrate (storage projections, sealing load) should look like a camera's."""
        rng = np.random.default_rng(1)
        h, w = self._format.height, self._format.width
        return [rng.integers(0, 8, size=(h, w), dtype=np.uint8) for _ in range(2)]

    def _open_encoder(self) -> av.video.codeccontext.VideoCodecContext:
        fmt = self._format
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt = fmt.width, fmt.height, "yuv420p"
        enc.time_base = _US
        enc.framerate = Fraction(fmt.fps)
        enc.bit_rate = fmt.bitrate
        enc.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": (
                f"keyint={fmt.gop}:min-keyint={fmt.gop}:scenecut=0:bframes=0:threads=1:"
                f"repeat-headers=1:vbv-maxrate={fmt.bitrate // 1000}:"
                f"vbv-bufsize={fmt.bitrate // 1000}"
            ),
        }
        enc.open()
        return enc

    def _picture(self, index: int, pts_ns: int, flash: bool) -> av.VideoFrame:
        frame = av.VideoFrame.from_ndarray(self._i420(index, pts_ns, flash), format="yuv420p")
        frame.pts = pts_ns // 1000
        frame.time_base = _US
        return frame

    def _i420(self, index: int, pts_ns: int, flash: bool) -> npt.NDArray[np.uint8]:
        fmt = self._format
        if flash:
            y = np.full((fmt.height, fmt.width), 235, dtype=np.uint8)
        else:
            y = self._bg + self._noise[index % len(self._noise)]
            bar = (index * 8) % max(1, fmt.width - 64)
            y[fmt.height // 2 : fmt.height // 2 + 32, bar : bar + 64] = 16
        if self._overlay:
            with self._lock:
                officer = self._officer_id
            utc = datetime.fromtimestamp(self._wall(), UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
            text = f"{utc}Z {self._device_id} OFC {officer or '-'} #{index:07d}"
            mask = render_text(text, self._scale)
            mh, mw = mask.shape
            mw = min(mw, fmt.width - 2 * self._scale)
            region = y[self._scale : self._scale + mh, self._scale : self._scale + mw]
            region[:] = np.where(mask[:, :mw], 235, 16)
        return np.concatenate([y, self._chroma])

    def _produce(self, sink: FrameSink) -> None:
        enc = self._open_encoder()
        interval = 1_000_000_000 // self._format.fps
        clock = self._clock
        t0 = clock.now_ns()
        index = 0
        pending: deque[int] = deque()
        while not self._stop.is_set():
            due = t0 + index * interval
            now = clock.now_ns()
            if now < due:
                clock.sleep(self._stop, due - now)
                continue
            late = (now - due) // interval
            if late > 0:  # the encoder could not keep up: a real sensor drops these frames
                index += int(late)
                self._dropped += int(late)
                continue
            with self._lock:
                stalled, drop_every = self._stalled, self._drop_every
            this = index
            index += 1
            if stalled:
                continue
            if drop_every and this % drop_every == drop_every - 1:
                self._dropped += 1
                continue
            flash = bool(self._clapper_ns) and (due % self._clapper_ns) < interval
            self._lux = self.light.lux()
            pending.append(this)
            for packet in enc.encode(self._picture(this, due, flash)):
                frame_index = pending.popleft()
                sink(
                    EncodedFrame(
                        data=bytes(packet),
                        pts_us=int(packet.pts or 0),
                        keyframe=bool(packet.is_keyframe),
                        index=frame_index,
                    )
                )
                self._delivered += 1
            self._cpu_s = time.thread_time()


class StallingCamera(SimCamera):
    """A camera that stalls silently after ``stall_after`` frames (picamera2 #1090)."""

    def __init__(self, *, stall_after: int = 60, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self._stall_after = stall_after
        self._seen = 0

    def start(self, sink: FrameSink) -> None:
        """Start, wrapping the sink to stall after the configured count."""

        def counting(frame: EncodedFrame) -> None:
            self._seen += 1
            if self._seen >= self._stall_after:
                self.stall()
            sink(frame)

        super().start(counting)


class DroppingCamera(SimCamera):
    """A camera that drops every ``n``-th frame (a bench fault)."""

    def __init__(self, *, n: int = 100, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.drop_every(n)
