"""PortAudio microphone driver (pyaudio, callback mode).

PortAudio calls :meth:`_callback` from its own thread. Timestamps: the ADC clock and
``CLOCK_MONOTONIC`` drift apart (50 ppm is 180 ms an hour), so counting samples alone would
let audio slide against video. Each chunk's pts is the sample count since an anchor. When the
counted time and the observed arrival time (minimum over a window, which removes scheduling
jitter) disagree by more than ``resync_ms``, the anchor is *slewed* by at most
``max_slew_ms`` per window (about 1,500 ppm of correction) -- never stepped, and a pts never
goes below the end of the previous chunk, because the muxer needs monotonic audio. After an
overflow (samples really lost) the anchor is re-set on the real clock, leaving a visible hole.

An exception must never leave the callback: PyAudio turns one into ``paAbort``, PortAudio
ends the stream, and the microphone falls silent with nothing but a traceback on stderr. The
callback therefore catches everything, counts it in :attr:`PyAudioMicrophone.callback_errors`,
keeps the last one in :attr:`PyAudioMicrophone.error` (logged once), and continues -- as the
camera driver's callbacks do. A microphone that stops delivering for any other reason is the
recorder's frame-progress watchdog's to notice (it watches the audio chunk count too).

Locking: the counters are written only by PortAudio's thread; readers see ints (atomic in
CPython). ``start``/``stop`` are called from one controller thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from hw.audio import AudioChunk, AudioFormat, AudioSink
from hw.errors import AudioError, DeviceMissing

__all__ = ["PyAudioMicrophone", "find_input_device"]

log = logging.getLogger(__name__)

_WINDOW_CHUNKS = 64


def find_input_device(pa: Any, name: str) -> int | None:
    """Index of the first input device whose name contains ``name`` (None = default)."""
    if not name:
        return None
    for i in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(i)
        if name in str(info.get("name", "")) and int(info.get("maxInputChannels", 0)) > 0:
            return i
    names = [str(pa.get_device_info_by_index(i).get("name")) for i in range(pa.get_device_count())]
    raise DeviceMissing(f"no audio input device matching {name!r}; have: {', '.join(names)}")


class PyAudioMicrophone:
    """A PortAudio capture stream delivering S16LE chunks to one sink."""

    def __init__(
        self,
        *,
        device: str = "",
        sample_rate: int = 48_000,
        channels: int = 1,
        chunk_frames: int = 1024,
        resync_ms: float = 20.0,
        max_slew_ms: float = 2.0,
        mono_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        import pyaudio  # deferred: importing PortAudio probes sound hardware

        self._pyaudio = pyaudio
        self._pa = pyaudio.PyAudio()
        try:
            self._index = find_input_device(self._pa, device)
        except DeviceMissing:
            self._pa.terminate()
            raise
        self._format = AudioFormat(sample_rate=sample_rate, channels=channels)
        self._chunk = chunk_frames
        self._resync_ns = int(resync_ms * 1e6)
        self._max_slew_ns = int(max_slew_ms * 1e6)
        self._next_ns = 0  # end of the previous chunk: pts never go below it
        self._mono_ns = mono_ns
        self._stream: Any = None
        self._sink: AudioSink | None = None
        self._overflows = 0
        self._callback_errors = 0
        self._error: BaseException | None = None
        self._anchor_ns: int | None = None
        self._counted = 0
        self._offsets: list[int] = []
        self.resyncs = 0

    @property
    def format(self) -> AudioFormat:
        """Capture format."""
        return self._format

    @property
    def overflows(self) -> int:
        """Input overflows reported by PortAudio (samples lost, recording continues)."""
        return self._overflows

    @property
    def callback_errors(self) -> int:
        """Exceptions caught in the PortAudio callback (each one lost that chunk, not the stream)."""
        return self._callback_errors

    @property
    def error(self) -> BaseException | None:
        """The last exception caught in the PortAudio callback."""
        return self._error

    def start(self, sink: AudioSink) -> None:
        """Open and start the callback stream."""
        self._sink = sink
        self._anchor_ns = None
        try:
            self._stream = self._pa.open(
                format=self._pyaudio.paInt16,
                channels=self._format.channels,
                rate=self._format.sample_rate,
                input=True,
                input_device_index=self._index,
                frames_per_buffer=self._chunk,
                stream_callback=self._callback,
            )
        except (OSError, ValueError) as exc:
            raise AudioError(f"cannot open the audio input: {exc}") from exc

    def stop(self) -> None:
        """Stop and close the stream (PortAudio joins its callback thread)."""
        if self._stream is not None:
            self._stream.stop_stream()
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        """Release PortAudio."""
        self.stop()
        self._pa.terminate()

    def _pts_for(self, frames: int) -> int:
        rate = self._format.sample_rate
        arrival = self._mono_ns() - frames * 1_000_000_000 // rate  # first sample, observed
        if self._anchor_ns is None:
            self._anchor_ns, self._counted = arrival, 0
        counted = self._anchor_ns + self._counted * 1_000_000_000 // rate
        self._offsets.append(arrival - counted)
        if len(self._offsets) >= _WINDOW_CHUNKS:
            drift = min(self._offsets)
            self._offsets.clear()
            if abs(drift) > self._resync_ns:
                step = max(-self._max_slew_ns, min(self._max_slew_ns, drift))
                self._anchor_ns += step
                counted += step
                self.resyncs += 1
        counted = max(counted, self._next_ns)
        self._next_ns = counted + frames * 1_000_000_000 // rate
        self._counted += frames
        return counted // 1000

    def _callback(self, in_data: bytes | None, frame_count: int, time_info: Any, status: int) -> Any:
        try:
            if status & self._pyaudio.paInputOverflow:
                self._overflows += 1
                self._anchor_ns = None  # samples were lost: re-anchor on the real clock
            if in_data and self._sink is not None:
                self._sink(AudioChunk(pcm=in_data, pts_us=self._pts_for(frame_count),
                                      frames=frame_count))
        except Exception as exc:  # escaping would abort the stream (PyAudio returns paAbort)
            self._callback_errors += 1
            self._error = exc
            if self._callback_errors == 1:
                log.exception("audio callback failed; the stream continues")
        return (None, self._pyaudio.paContinue)
