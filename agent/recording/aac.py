"""PCM → AAC, continuously, so audio is encoded once and survives segment rolls intact.

One encoder runs for the agent's lifetime (like the always-running video encoder): the
pre-event ring and every segment receive already-encoded AAC frames, so a segment boundary
never restarts the encoder (no priming silence, no dropped samples at the join).

Timing: input chunks carry monotonic ``pts_us``; samples are regrouped into the encoder's
1024-sample frames with exact sample-count timestamps. A discontinuity (an overflow on the
device, > 5 ms from the expected time) restarts the grouping at the chunk's own time, so the
hole stays visible instead of shifting the rest of the audio.

Not thread-safe: used only by the controller thread.
"""

from __future__ import annotations

from fractions import Fraction
from typing import cast

import av

from agent.recording.packets import MediaPacket
from hw.audio import AudioChunk, AudioFormat

__all__ = ["AacEncoder"]

_TOLERANCE_US = 5_000

#: libavcodec's AAC coders the agent accepts: ``fast`` (one pass) or ``twoloop`` (its default,
#: a rate-distortion search that costs several times more CPU). See docs/PERFORMANCE.md.
AAC_CODERS = ("fast", "twoloop")


class AacEncoder:
    """Encode PCM chunks into AAC :class:`MediaPacket` objects."""

    def __init__(self, fmt: AudioFormat, *, bitrate: int = 96_000, coder: str = "fast") -> None:
        if coder not in AAC_CODERS:
            raise ValueError(f"unknown AAC coder {coder!r}: expected one of {AAC_CODERS}")
        self.format = fmt
        layout = "mono" if fmt.channels == 1 else "stereo"
        enc = av.CodecContext.create("aac", "w")
        enc.sample_rate = fmt.sample_rate
        enc.layout = layout
        enc.format = "fltp"
        enc.bit_rate = bitrate
        enc.time_base = Fraction(1, fmt.sample_rate)
        enc.options = {"aac_coder": coder}
        enc.open()
        self._enc = enc
        self._layout = layout
        self._time_base = Fraction(1, fmt.sample_rate)
        self.frame_size: int = enc.frame_size or 1024
        self.frame_us = self.frame_size * 1_000_000 // fmt.sample_rate  # 21 333 at 48 kHz
        self.extradata: bytes = bytes(enc.extradata or b"")
        # Pending S16LE bytes (less than one frame between calls): chunks are appended as bytes
        # and only whole frames are converted, once, so a chunk costs no per-chunk arrays.
        self._buf = bytearray()
        self._buf_pts: int | None = None  # in samples, of the first pending sample
        self.discontinuities = 0

    def _samples(self, us: int) -> int:
        return us * self.format.sample_rate // 1_000_000

    def _us(self, samples: int) -> int:
        return samples * 1_000_000 // self.format.sample_rate

    @property
    def pending_us(self) -> int:
        """Audio taken in but not yet encoded (held, or less than one frame)."""
        return self._us(len(self._buf) // self.format.bytes_per_frame)

    def encode(self, chunk: AudioChunk, *, hold_frames: int = 1) -> list[MediaPacket]:
        """Feed one chunk; return the AAC packets that became complete.

        The whole frames a chunk completes go to libavcodec as ONE S16 frame: PyAV passes
        every frame through a filter graph that converts S16 to the coder's float planes
        (an exact scaling by 2^-15) and cuts 1 024-sample frames -- per call, not per frame,
        so a 100 ms chunk costs one trip through it instead of five, and no numpy array.

        ``hold_frames``: encode only once at least that many whole frames are pending. What a
        call costs is mostly fixed (a real-time encoder wakes with cold caches: one call per
        second costs ~40 % less CPU than ten, measured in docs/PERFORMANCE.md), so a caller
        that needs no packet soon -- the pre-event ring in standby -- holds the PCM and
        encodes it in larger runs; the next call with ``hold_frames=1`` encodes all of it,
        with the same timestamps, so nothing held is ever lost or shifted."""
        bpf = self.format.bytes_per_frame
        start = self._samples(chunk.pts_us)
        buf = self._buf
        if self._buf_pts is None:
            self._buf_pts = start
        else:
            expected = self._buf_pts + len(buf) // bpf
            if abs(self._us(start - expected)) > _TOLERANCE_US:
                self.discontinuities += 1
                buf.clear()
                self._buf_pts = start
        buf += chunk.pcm
        return self._encode_whole(hold_frames)

    def release(self) -> list[MediaPacket]:
        """Encode every whole frame held (a press: the recording needs its audio now)."""
        return self._encode_whole(1)

    def _encode_whole(self, hold_frames: int) -> list[MediaPacket]:
        bpf, buf, fs = self.format.bytes_per_frame, self._buf, self.frame_size
        whole = len(buf) // (fs * bpf)
        if whole == 0 or whole < hold_frames or self._buf_pts is None:
            return []
        n = whole * fs * bpf
        frame = av.AudioFrame(format="s16", layout=self._layout, samples=whole * fs)
        with memoryview(buf) as view:
            frame.planes[0].update(cast(bytes, view[:n]))  # any buffer; stubs say bytes
        del buf[:n]
        frame.sample_rate = self.format.sample_rate
        frame.pts = self._buf_pts
        frame.time_base = self._time_base
        self._buf_pts += whole * fs
        us, rate, fsize = self._us, self.format.sample_rate, self.frame_size
        return [MediaPacket("audio", bytes(p), us(int(p.pts)),
                            (p.duration or fsize) * 1_000_000 // rate)
                for p in self._enc.encode(frame) if p.pts is not None]
