"""The pre-event buffer: the last N seconds of *encoded* media, keyframe-aligned.

A press must start a recording that already contains the seconds before it. Holding encoded
packets (not raw frames) keeps 30 s of 1080p30 at about 30 MB; trimming by time keeps the
memory bound independent of bitrate spikes. The ring always begins with a video keyframe
(carrying SPS/PPS), so it can open a segment directly; the span held is between
``seconds`` and ``seconds`` + one GOP.

The ring is trimmed by video time, so audio alone cannot make it grow: when no frame has come
for longer than the window (a stalled or dead camera, the microphone still running -- also
in the fault state, for as long as the process lives), the video held is no longer pre-event
media and the ring empties until the next keyframe.

Not thread-safe: owned by the controller thread.
"""

from __future__ import annotations

from collections import deque

from agent.recording.packets import MediaPacket

__all__ = ["PreRoll"]

_STALL_SLACK_US = 2_000_000  # audio may run ahead of the newest frame by this much beyond the window


class PreRoll:
    """A time-bounded ring of encoded packets that starts on a keyframe."""

    def __init__(self, seconds: float, *, keep_audio: bool = True, audio_only: bool = False) -> None:
        self.seconds = seconds
        self.keep_audio = keep_audio or audio_only
        # An audio recorder has no keyframes: every AAC frame can start a segment.
        self.audio_only = audio_only
        self._span_us = int(seconds * 1_000_000)
        self._packets: deque[MediaPacket] = deque()
        self._keyframes: deque[int] = deque()  # pts of keyframes held, oldest first
        self._bytes = 0
        self._newest_us = 0

    def push(self, packet: MediaPacket) -> None:
        """Add a packet and drop what is older than the window allows."""
        if packet.kind == "audio" and self.audio_only:
            self._keyframes.append(packet.pts_us)
        elif packet.kind == "audio":
            if not self.keep_audio or not self._keyframes:
                return
            if packet.pts_us - self._newest_us > self._span_us + _STALL_SLACK_US:
                self.drain()  # no video for a whole window: what is held is stale
                return
        elif packet.keyframe:
            self._keyframes.append(packet.pts_us)
        elif not self._keyframes:
            return  # never start the ring on a frame that cannot be decoded alone
        self._packets.append(packet)
        self._bytes += len(packet.data)
        if packet.kind == "video" or self.audio_only:
            self._trim(packet.pts_us)

    def _trim(self, newest_us: int) -> None:
        """Keep the newest keyframe at or before ``newest - span`` as the ring's start."""
        self._newest_us = newest_us
        limit = newest_us - self._span_us
        while len(self._keyframes) >= 2 and self._keyframes[1] <= limit:
            self._keyframes.popleft()
        start = self._keyframes[0]
        while self._packets and self._packets[0].pts_us < start:
            self._bytes -= len(self._packets.popleft().data)

    def resize(self, seconds: float) -> None:
        """Change the window (remote configuration); takes effect with the next frame."""
        self.seconds = seconds
        self._span_us = int(seconds * 1_000_000)

    def drain(self) -> list[MediaPacket]:
        """Hand over everything held (the start of a recording) and empty the ring."""
        packets = list(self._packets)
        self._packets.clear()
        self._keyframes.clear()
        self._bytes = 0
        return packets

    @property
    def span_s(self) -> float:
        """Seconds of video currently held (first keyframe to newest frame)."""
        if not self._keyframes:
            return 0.0
        return (self._newest_us - self._keyframes[0]) / 1e6

    @property
    def nbytes(self) -> int:
        """Bytes of media held."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._packets)
