"""Simulated microphone: real PCM, paced in real time (or faster), with a clapper beep.

The signal is a quiet room tone plus, when ``clapper_s`` is set, a 50 ms 1 kHz beep at every
multiple of ``clapper_s`` on the monotonic clock -- the same instants at which
:class:`hw.camera_sim.SimCamera` flashes -- so A/V sync can be measured from the recording.
``delay_ms`` shifts the beeps late, modelling an audio path that lags the picture.

Chunks are paced and stamped on a :class:`hw.sim_clock.MediaClock`: real time by default; at
``speed`` N, N times faster, each chunk stamped with its first sample's nominal media time.
Give the camera the same clock, or their stamps drift apart.

Stimulus verbs: :meth:`overflow` (lose samples like an input overrun), :meth:`mute`.
Locking: ``_lock`` guards the stimulus state; the capture thread owns the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from hw.audio import AudioChunk, AudioFormat, AudioSink
from hw.errors import AudioError
from hw.sim_clock import MediaClock

__all__ = ["SimMicrophone"]

_BEEP_HZ = 1000.0
_BEEP_S = 0.05


class SimMicrophone:
    """A microphone producing S16LE PCM chunks at its media clock's pace."""

    def __init__(
        self,
        *,
        sample_rate: int = 48_000,
        channels: int = 1,
        chunk_frames: int = 1024,
        clapper_s: float = 0.0,
        delay_ms: float = 0.0,
        mono_ns: Callable[[], int] = time.monotonic_ns,
        clock: MediaClock | None = None,
    ) -> None:
        """``clock`` paces and stamps the chunks (default: real time on ``mono_ns``)."""
        self._format = AudioFormat(sample_rate=sample_rate, channels=channels)
        self._chunk = chunk_frames
        self._clapper_s = clapper_s
        self._delay_s = delay_ms / 1000.0
        self._clock = clock or MediaClock(1.0, mono_ns=mono_ns)
        self._lock = threading.Lock()
        self._muted = False
        self._lose_frames = 0
        self._overflows = 0
        self._cpu_s = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = np.random.default_rng(7)

    @property
    def format(self) -> AudioFormat:
        """Capture format."""
        return self._format

    @property
    def overflows(self) -> int:
        """Simulated input overruns."""
        return self._overflows

    @property
    def cpu_seconds(self) -> float:
        """CPU time of the capture thread (signal synthesis), for benchmarks."""
        return self._cpu_s

    def start(self, sink: AudioSink) -> None:
        """Start the capture thread."""
        if self._thread is not None and self._thread.is_alive():
            raise AudioError("microphone already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(sink,), name="sim-mic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop; returns after the last sink call."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def overflow(self, frames: int) -> None:
        """Lose ``frames`` samples at the next chunk, as a real overrun would."""
        with self._lock:
            self._lose_frames += frames

    def mute(self, on: bool = True) -> None:
        """Silence the signal (a covered microphone)."""
        with self._lock:
            self._muted = on

    def _signal(self, start_ns: int, n: int) -> bytes:
        rate = self._format.sample_rate
        t = start_ns / 1e9 + np.arange(n) / rate
        x = self._rng.normal(0.0, 60.0, n)  # room tone, about -55 dBFS
        if self._clapper_s > 0:
            phase = np.mod(t - self._delay_s, self._clapper_s)
            beep = phase < _BEEP_S
            x = np.where(beep, 12000.0 * np.sin(2 * np.pi * _BEEP_HZ * t), x)
        with self._lock:
            if self._muted:
                x = np.zeros(n)
        pcm = np.clip(x, -32768, 32767).astype("<i2")
        if self._format.channels > 1:
            pcm = np.repeat(pcm, self._format.channels)
        return pcm.tobytes()

    def _run(self, sink: AudioSink) -> None:
        rate = self._format.sample_rate
        clock = self._clock
        t0 = clock.now_ns()
        produced = 0
        while not self._stop.is_set():
            start_ns = t0 + produced * 1_000_000_000 // rate
            end_ns = t0 + (produced + self._chunk) * 1_000_000_000 // rate
            now = clock.now_ns()
            if now < end_ns:  # a chunk is available once its last sample has been captured
                clock.sleep(self._stop, end_ns - now)
                continue
            with self._lock:
                lose, self._lose_frames = self._lose_frames, 0
            if lose:
                self._overflows += 1
                produced += lose
                continue
            sink(AudioChunk(pcm=self._signal(start_ns, self._chunk), pts_us=start_ns // 1000,
                            frames=self._chunk))
            produced += self._chunk
            self._cpu_s = time.thread_time()
