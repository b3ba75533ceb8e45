"""Microphone seam: raw PCM chunks with capture timestamps.

Contract (checked by ``tests/contract/test_audio_contract.py``):

* chunks are signed 16-bit little-endian, interleaved, at ``format.sample_rate``;
* ``pts_us`` is the ``CLOCK_MONOTONIC`` time of the chunk's first sample;
* consecutive chunks are contiguous: a driver that loses samples (an overflow) counts it in
  ``overflows`` and restarts ``pts_us`` from the real clock so the recorder can see the hole;
* the sink is called from the driver's thread and must not block for long.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["AudioChunk", "AudioFormat", "AudioSink", "Microphone"]


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Capture format; the recorder encodes it to AAC."""

    sample_rate: int = 48_000
    channels: int = 1

    @property
    def bytes_per_frame(self) -> int:
        """Bytes of one sample frame (all channels, S16LE)."""
        return 2 * self.channels


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A run of contiguous PCM sample frames."""

    pcm: bytes
    pts_us: int
    frames: int


AudioSink = Callable[[AudioChunk], None]


@runtime_checkable
class Microphone(Protocol):
    """A capture device delivering PCM chunks to one sink."""

    @property
    def format(self) -> AudioFormat:
        """The capture format."""
        ...

    def start(self, sink: AudioSink) -> None:
        """Start capturing; ``sink`` is called from the driver's thread."""
        ...

    def stop(self) -> None:
        """Stop capturing; returns after the last ``sink`` call completed."""
        ...

    @property
    def overflows(self) -> int:
        """Input overflows (lost samples) counted since start; never fatal."""
        ...
