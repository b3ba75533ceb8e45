"""Replay camera: a recorded H.264 clip delivered as a hardware encoder would deliver it.

On a Pi the H.264 encoder is hardware: the recorder receives access units at the frame rate
and pays nothing for them. :class:`hw.camera_sim.SimCamera` synthesises pictures and runs
libx264 in the agent's process, which is right for testing the overlay and the encoder
settings but buries the recorder's own cost under the simulator's. This camera plays a
pre-encoded clip (MP4 or raw Annex-B), looped, at its frame rate with real
``CLOCK_MONOTONIC`` timestamps, so benchmarks measure the recorder and nothing else. Given a
:class:`hw.sim_clock.MediaClock` running at ``speed`` N it plays N times faster, stamped at the
nominal frame period on that clock's media time (a soak of a week's segments).

What it keeps of the :mod:`hw.camera` contract, and how:

* ``pts_us`` is the due time of each frame on the monotonic clock (``t0 + n * interval``;
  the media clock's time line when it runs fast), strictly increasing across loops;
  ``index`` counts frames since ``start()`` and continues across loops, so a loop is
  invisible to the recorder.
* Keyframes are the clip's IDR access units; each carries SPS and PPS (MP4 parameter sets are
  converted by libavcodec's ``h264_mp4toannexb``; a raw stream that sends them once gets the
  last ones seen inserted before every IDR). The clip must open on an IDR, and for keyframes to
  stay ``gop`` apart across a loop its length must be a whole number of GOPs.
* A hardware encoder queues a few finished frames (picamera2 keeps several buffers), so a
  consumer thread that wakes late gets them late, not never: frames up to
  ``_QUEUED_FRAMES`` late are delivered (with their capture time); beyond that they are
  dropped and counted (index gap), as the simulator and a real sensor do. At ``speed`` N the
  queue holds N times as many frames: it covers the same real time, so a reader thread that
  the scheduler delays as it would at speed 1 loses nothing more.

The clip has no overlay stage: the pictures are whatever was recorded. Only the packets of one
loop of the file are held (read once at construction), so the clip should be short -- a few
seconds to a minute; memory is the clip's size.

Locking: ``_lock`` guards the stimulus state (stall); the playback thread owns everything else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av

from hw.camera import EncodedFrame, FrameSink, VideoFormat
from hw.camera_thread import ThreadedCamera
from hw.errors import CameraError
from hw.sim_clock import MediaClock

__all__ = ["ReplayCamera", "ReplayClip", "load_clip"]

_NAL_IDR, _NAL_SPS, _NAL_PPS = 5, 7, 8
_START = b"\x00\x00\x00\x01"
_MAX_CLIP_BYTES = 256 * 1024 * 1024
_QUEUED_FRAMES = 6  # frames an encoder holds for a late reader (~200 ms at 30 fps)


@dataclass(frozen=True, slots=True)
class ReplayClip:
    """One loop of a clip: Annex-B access units and what the stream says about itself."""

    frames: tuple[tuple[bytes, bool], ...]  # (access unit, is IDR)
    width: int
    height: int
    fps: int
    bitrate: int
    gop: int
    profile: str


def _nal_units(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B access unit (start codes removed)."""
    out: list[bytes] = []
    pos = data.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        nxt = data.find(b"\x00\x00\x01", start)
        unit = data[start:nxt if nxt >= 0 else len(data)]
        if nxt >= 0:
            unit = unit.rstrip(b"\x00")  # the zero of a following 4-byte start code
        if unit:
            out.append(unit)
        pos = nxt
    return out


def _with_parameter_sets(units: list[bytes], sps: bytes, pps: bytes) -> bytes:
    """An IDR access unit that carries SPS and PPS, inserting the last ones seen if needed."""
    types = {u[0] & 0x1F for u in units}
    head = [] if _NAL_SPS in types and _NAL_PPS in types else [sps, pps]
    return b"".join(_START + u for u in (*head, *units))


def load_clip(path: Path, *, fps: int | None = None) -> ReplayClip:
    """Read every access unit of ``path`` (MP4/MOV/MKV or raw Annex-B H.264).

    ``fps`` overrides the rate a container declares; a raw stream has no timing, so it needs
    one (30 when absent). Raises :class:`CameraError` for a file that is not usable H.264.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise CameraError(f"replay clip {path}: {exc.strerror or exc}") from exc
    if size > _MAX_CLIP_BYTES:
        raise CameraError(f"replay clip {path}: {size} bytes; a replay clip is held in memory, "
                          f"keep it under {_MAX_CLIP_BYTES // (1024 * 1024)} MiB")
    raw = path.suffix.lower() in (".h264", ".264", ".avc")
    try:
        with av.open(str(path), format="h264" if raw else None) as container:
            if not container.streams.video:
                raise CameraError(f"replay clip {path}: no video stream")
            stream = container.streams.video[0]
            if stream.codec_context.name != "h264":
                raise CameraError(f"replay clip {path}: video is {stream.codec_context.name}, "
                                  "not H.264")
            ctx = stream.codec_context
            rate = fps or (None if raw else stream.average_rate) or 30
            bsf = None if raw else av.BitStreamFilterContext("h264_mp4toannexb", stream)
            units: list[bytes] = []
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                units += [bytes(p) for p in (bsf.filter(packet) if bsf else [packet])]
            if bsf is not None:
                units += [bytes(p) for p in bsf.filter(None)]
            width, height, profile = ctx.width, ctx.height, str(ctx.profile or "high")
    except av.error.FFmpegError as exc:
        raise CameraError(f"replay clip {path}: not a readable H.264 file ({exc})") from exc
    return _clip(path, units, width=width, height=height, fps=round(float(rate)), profile=profile)


def _clip(path: Path, units: list[bytes], *, width: int, height: int, fps: int,
          profile: str) -> ReplayClip:
    frames: list[tuple[bytes, bool]] = []
    sps = pps = b""
    for au in units:
        nals = _nal_units(au)
        for u in nals:
            if u[0] & 0x1F == _NAL_SPS:
                sps = u
            elif u[0] & 0x1F == _NAL_PPS:
                pps = u
        idr = any(u[0] & 0x1F == _NAL_IDR for u in nals)
        if idr and not (sps and pps):
            raise CameraError(f"replay clip {path}: an IDR frame comes before any SPS/PPS")
        frames.append((_with_parameter_sets(nals, sps, pps) if idr else au, idr))
    if not frames or not frames[0][1]:
        raise CameraError(f"replay clip {path}: the clip must start on an IDR keyframe")
    keys = [i for i, (_, idr) in enumerate(frames) if idr]
    gop = keys[1] - keys[0] if len(keys) > 1 else len(frames)
    nbytes = sum(len(au) for au, _ in frames)
    bitrate = nbytes * 8 * fps // len(frames)
    return ReplayClip(tuple(frames), width, height, fps, bitrate, gop, profile)


class ReplayCamera(ThreadedCamera):
    """A camera whose encoder output is a recorded clip, looped, paced on its media clock."""

    _thread_name = "replay-camera"

    def __init__(
        self,
        path: Path | str,
        *,
        fps: int | None = None,
        mono_ns: Callable[[], int] = time.monotonic_ns,
        clock: MediaClock | None = None,
    ) -> None:
        """``clock`` paces and stamps the frames (default: real time on ``mono_ns``)."""
        self._clip = load_clip(Path(path), fps=fps)
        self._clock = clock or MediaClock(1.0, mono_ns=mono_ns)
        c = self._clip
        super().__init__(VideoFormat(width=c.width, height=c.height, fps=c.fps,
                                     bitrate=c.bitrate, profile=c.profile.lower(), gop=c.gop),
                         mono_ns=mono_ns)
        self._loops = 0

    # --- contract ---------------------------------------------------------------------------
    def lux(self) -> float | None:
        """None: a recorded clip carries no light estimate (night vision stays as it is)."""
        return None

    @property
    def loops(self) -> int:
        """Times the clip wrapped around since construction."""
        return self._loops

    # --- internals --------------------------------------------------------------------------
    def _produce(self, sink: FrameSink) -> None:
        frames = self._clip.frames
        count = len(frames)
        interval = 1_000_000_000 // self._format.fps
        clock = self._clock
        queued = round(_QUEUED_FRAMES * clock.speed)
        t0 = clock.now_ns()
        index = 0
        need_key = False  # after a drop, the next frame delivered is a keyframe (decodable)
        while not self._stop.is_set():
            due = t0 + index * interval
            now = clock.now_ns()
            if now < due:
                clock.sleep(self._stop, due - now)
                continue
            late = (now - due) // interval
            with self._lock:
                stalled = self._stalled
            data, key = frames[index % count]
            if late > queued or stalled or (need_key and not key):
                # A late thread or a stalled sensor loses these frames; the clip position
                # advances with the index (a loop stays GOP-aligned) and delivery resumes on
                # the next keyframe, as predicted frames without their reference are garbage.
                skip = max(1, int(late) if late > queued else 1)
                index += skip
                self._dropped += skip
                need_key = True
                continue
            need_key = False
            if index and index % count == 0:
                self._loops += 1
            sink(EncodedFrame(data=data, pts_us=due // 1000, keyframe=key, index=index))
            self._delivered += 1
            index += 1
