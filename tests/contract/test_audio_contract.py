"""The Microphone contract: the simulator always, the PortAudio driver through a real ALSA PCM.

The simulator is checked for framing, contiguous timestamps that really locate its samples
(its clapper beeps fall where the pts say), and its overflow stimulus. The pyaudio driver is
run against a real ALSA device with no sound card: a test-local ``.asoundrc`` defines a PCM
of ALSA's ``file`` plugin whose ``infile`` is a sine generated here, so the bytes that reach
the sink can be compared with the file. PortAudio reads the ALSA configuration when it
initialises, so that part runs in a subprocess with ``HOME`` pointing at the test directory.
With ``--hw pi`` the generic checks also run on the device's own microphone
(``BODYCAM_AUDIO_DEVICE``, default: the default input).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hw.audio import AudioChunk, Microphone
from hw.audio_sim import SimMicrophone
from hw.errors import DeviceMissing
from hw.factory import is_raspberry_pi

pytestmark = pytest.mark.timeout(60)

RATE, CHUNK, CLAP_S, BEEP_S = 48_000, 480, 0.25, 0.05
REPO = Path(__file__).resolve().parents[2]


class Collector:
    """A sink that keeps chunks with their arrival time and thread."""

    def __init__(self) -> None:
        self.chunks: list[AudioChunk] = []
        self.arrivals_us: list[int] = []
        self.threads: set[str] = set()
        self._cond = threading.Condition()

    def __call__(self, chunk: AudioChunk) -> None:
        with self._cond:
            self.chunks.append(chunk)
            self.arrivals_us.append(time.monotonic_ns() // 1000)
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()

    def count(self) -> int:
        with self._cond:
            return len(self.chunks)

    def wait_for(self, n: int, timeout: float = 10.0) -> int:
        with self._cond:
            self._cond.wait_for(lambda: len(self.chunks) >= n, timeout)
            return len(self.chunks)


@dataclass
class Capture:
    """What one microphone run left behind."""

    chunks: list[AudioChunk]
    arrivals_us: list[int]
    threads: set[str]
    start_us: int
    stop_us: int
    late_calls: int


def capture(mic: Microphone, seconds: float) -> Capture:
    """Run ``mic`` for ``seconds``, stop it, and watch for calls after stop()."""
    sink = Collector()
    start_us = time.monotonic_ns() // 1000
    mic.start(sink)
    sink.wait_for(1)
    threading.Event().wait(seconds)
    mic.stop()
    stop_us = time.monotonic_ns() // 1000
    at_stop = sink.count()
    threading.Event().wait(0.2)
    return Capture(list(sink.chunks), list(sink.arrivals_us), set(sink.threads), start_us, stop_us,
                   sink.count() - at_stop)


@pytest.fixture
def mic(hw_kind: str) -> Iterator[Microphone]:
    """The microphone under the generic checks: the simulator, or the Pi's real input."""
    if hw_kind != "pi":
        yield SimMicrophone(sample_rate=RATE, chunk_frames=CHUNK, clapper_s=CLAP_S)
        return
    if not is_raspberry_pi():
        pytest.skip("--hw pi: not running on a Raspberry Pi")
    pytest.importorskip("pyaudio")
    from hw.audio_pyaudio import PyAudioMicrophone

    try:
        real = PyAudioMicrophone(device=os.environ.get("BODYCAM_AUDIO_DEVICE", ""),
                                 sample_rate=RATE, chunk_frames=CHUNK)
    except DeviceMissing as exc:
        pytest.skip(f"--hw pi: {exc}")
    yield real
    real.close()


# --- generic contract -------------------------------------------------------------------------
def test_driver_implements_the_protocol(mic: Microphone) -> None:
    """The driver is a Microphone with the configured S16LE format."""
    assert isinstance(mic, Microphone)
    assert (mic.format.sample_rate, mic.format.bytes_per_frame) == (RATE, 2 * mic.format.channels)


def test_chunks_are_framed_s16le_and_contiguous(mic: Microphone) -> None:
    """Chunk bytes match their frame count; each pts follows the last by its duration (±1 ms)."""
    run = capture(mic, 1.0)
    assert len(run.chunks) >= 20
    bpf = mic.format.bytes_per_frame
    for chunk in run.chunks:
        assert chunk.frames > 0 and len(chunk.pcm) == chunk.frames * bpf
        samples = np.frombuffer(chunk.pcm, dtype="<i2")
        assert samples.size == chunk.frames * mic.format.channels
    assert any(np.frombuffer(c.pcm, dtype="<i2").any() for c in run.chunks), "all silence"
    for prev, nxt in pairwise(run.chunks):
        expected = prev.pts_us + prev.frames * 1_000_000 / mic.format.sample_rate
        assert abs(nxt.pts_us - expected) <= 1_000, (prev.pts_us, nxt.pts_us)
    assert mic.overflows == 0


def test_pts_are_the_monotonic_time_of_the_first_sample(mic: Microphone) -> None:
    """A chunk's pts lies after start() and before its own arrival minus its duration."""
    run = capture(mic, 0.5)
    rate = mic.format.sample_rate
    assert run.start_us - 100_000 <= run.chunks[0].pts_us
    for chunk, arrival in zip(run.chunks, run.arrivals_us, strict=True):
        end_us = chunk.pts_us + chunk.frames * 1_000_000 // rate
        assert end_us <= arrival + 1_000, "a chunk arrived before its last sample was captured"
        assert arrival - end_us < 500_000


def test_stop_ends_delivery(mic: Microphone) -> None:
    """After stop() returns no chunk is delivered, and chunks came from the driver's thread."""
    run = capture(mic, 0.3)
    assert run.chunks and run.late_calls == 0
    assert threading.current_thread().name not in run.threads


# --- simulator stimuli ------------------------------------------------------------------------
def _sim(hw_kind: str, **kw: Any) -> SimMicrophone:
    if hw_kind != "sim":
        pytest.skip("simulator stimulus")
    return SimMicrophone(sample_rate=RATE, chunk_frames=CHUNK, **kw)


def test_sim_beeps_land_where_the_pts_say(hw_kind: str) -> None:
    """The clapper beeps sit at multiples of clapper_s on the clock the pts are on (±5 ms)."""
    run = capture(_sim(hw_kind, clapper_s=CLAP_S), 1.2)
    t = np.concatenate([c.pts_us / 1e6 + np.arange(c.frames) / RATE for c in run.chunks])
    x = np.abs(np.concatenate([np.frombuffer(c.pcm, dtype="<i2") for c in run.chunks]).astype(int))
    phase = np.mod(t, CLAP_S)
    inside = (phase > 0.005) & (phase < BEEP_S - 0.005)
    outside = (phase > BEEP_S + 0.005) & (phase < CLAP_S - 0.005)
    assert inside.sum() > 2 * 0.03 * RATE, "fewer than two beeps captured"
    assert x[outside].max() < 2_000, "loud samples where the pts say there is no beep"
    beeps = np.flatnonzero(np.diff(np.floor(t / CLAP_S)) != 0)  # boundaries between clap periods
    for start in beeps:
        window = x[start + 1 : start + 1 + int(BEEP_S * RATE)]
        if window.size == int(BEEP_S * RATE):
            assert window[int(0.005 * RATE) : -int(0.005 * RATE)].max() > 8_000


def test_sim_overflow_is_counted_and_leaves_a_pts_hole(hw_kind: str) -> None:
    """overflow(n) loses n frames: overflows counts it and the next pts jumps by n/rate."""
    mic = _sim(hw_kind)
    sink = Collector()
    mic.start(sink)
    try:
        sink.wait_for(5)
        mic.overflow(4_800)
        sink.wait_for(sink.count() + 10)
    finally:
        mic.stop()
    assert mic.overflows == 1
    gaps = [b.pts_us - a.pts_us - a.frames * 1_000_000 // RATE for a, b in pairwise(sink.chunks)]
    holes = [g for g in gaps if abs(g) > 1_000]
    assert len(holes) == 1 and abs(holes[0] - 100_000) <= 1_000, holes


# --- the pyaudio driver through a real ALSA PCM -----------------------------------------------
_PROBE = r"""
import json, sys, threading, time
from hw.audio_pyaudio import PyAudioMicrophone
from hw.errors import DeviceMissing

mode, device, out_path, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "missing":
    try:
        PyAudioMicrophone(device=device)
    except DeviceMissing as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    else:
        print(json.dumps({"error": None}))
    sys.exit(0)
chunks, threads, done, calls = [], set(), threading.Event(), [0]
def sink(chunk):
    calls[0] += 1
    if mode == "raising" and calls[0] == 3:
        raise RuntimeError("sink failed on the third chunk")
    chunks.append(chunk)
    threads.add(threading.current_thread().name)
    if len(chunks) >= want:
        done.set()
mic = PyAudioMicrophone(device=device, sample_rate=48000, chunk_frames=480)
overflows_before = mic.overflows
mic.start(sink)
done.wait(10)
mic.stop()
at_stop = len(chunks)
time.sleep(0.2)
late = len(chunks) - at_stop
mic.close()
with open(out_path, "wb") as f:
    for c in chunks:
        f.write(c.pcm)
print(json.dumps({
    "chunks": at_stop, "late": late, "frames": sorted({c.frames for c in chunks}),
    "bytes": [len(c.pcm) for c in chunks], "pts": [c.pts_us for c in chunks],
    "overflows_before": overflows_before, "overflows": mic.overflows,
    "threads": sorted(threads), "main": threading.current_thread().name,
    "callback_errors": mic.callback_errors, "error": repr(mic.error),
}))
"""


@dataclass
class FakeMic:
    """A directory holding an asoundrc with ``pcm.fakemic`` and the samples it plays."""

    home: Path
    samples: bytes

    def run(self, mode: str, device: str, want: int = 100) -> dict[str, Any]:
        out = self.home / "captured.raw"
        env = {**os.environ, "HOME": str(self.home), "PYTHONPATH": str(REPO)}
        env.pop("ALSA_CONFIG_PATH", None)
        proc = subprocess.run([sys.executable, "-c", _PROBE, mode, device, str(out), str(want)],
                              check=False, env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=40)
        assert proc.returncode == 0, proc.stderr[-2000:]
        result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
        if out.exists():
            result["pcm"] = out.read_bytes()
        return result


@pytest.fixture(scope="module")
def fakemic(tmp_path_factory: pytest.TempPathFactory) -> FakeMic:
    """A 440 Hz S16_LE 48 kHz mono sine behind an ALSA ``file`` PCM named ``fakemic``.

    Its ``null`` slave does not pace capture in real time: PortAudio reads as fast as the
    callback keeps up, and the chunks that arrive while the stream is being stopped can run
    several seconds past the 100 asked for on a loaded machine. The source is long enough
    (20 s) that a capture never reaches its end, where the file plugin has no samples to give."""
    pytest.importorskip("pyaudio")
    home = tmp_path_factory.mktemp("alsa-home")
    n = RATE * 20
    sine = (np.sin(2 * np.pi * 440 * np.arange(n) / RATE) * 12_000).astype("<i2").tobytes()
    (home / "in.raw").write_bytes(sine)
    (home / ".asoundrc").write_text(
        "pcm.fakemic {\n"
        "    type file\n"
        '    slave.pcm "null"\n'
        '    file "/dev/null"\n'
        f'    infile "{home / "in.raw"}"\n'
        '    format "raw"\n'
        "}\n"
    )
    return FakeMic(home, sine)


@pytest.fixture(scope="module")
def fakemic_run(fakemic: FakeMic) -> dict[str, Any]:
    """One capture of 100 chunks from the fake microphone through PortAudio."""
    return fakemic.run("capture", "fakemic")


def test_pyaudio_delivers_the_devices_samples_unaltered(fakemic: FakeMic,
                                                        fakemic_run: dict[str, Any]) -> None:
    """The bytes reaching the sink are the ALSA device's samples, in order, none lost."""
    pcm: bytes = fakemic_run["pcm"]
    assert 100 * CHUNK * 2 <= len(pcm) < len(fakemic.samples), len(pcm)
    assert pcm == fakemic.samples[: len(pcm)]


def test_pyaudio_chunk_framing_and_threads(fakemic_run: dict[str, Any]) -> None:
    """Chunks hold the requested frames as S16LE mono; the sink runs on PortAudio's thread."""
    assert fakemic_run["frames"] == [CHUNK]
    assert set(fakemic_run["bytes"]) == {CHUNK * 2}
    assert fakemic_run["main"] not in fakemic_run["threads"]
    assert fakemic_run["late"] == 0


def test_pyaudio_overflow_counter_starts_at_zero(fakemic_run: dict[str, Any]) -> None:
    """A fresh driver reports no overflow, and an uninterrupted capture adds none."""
    assert fakemic_run["overflows_before"] == 0
    assert fakemic_run["overflows"] == 0


def test_pyaudio_pts_never_step_backwards(fakemic_run: dict[str, Any]) -> None:
    """Even when the source runs faster than real time, pts must not go backwards."""
    pts = fakemic_run["pts"]
    assert all(b > a for a, b in pairwise(pts)), min(b - a for a, b in pairwise(pts))


def test_pyaudio_missing_device_names_the_devices_it_has(fakemic: FakeMic) -> None:
    """Asking for an absent device raises DeviceMissing listing the devices PortAudio sees."""
    result = fakemic.run("missing", "no-such-microphone")
    assert result["error"] == "DeviceMissing"
    assert "no-such-microphone" in result["message"] and "fakemic" in result["message"]


def test_pyaudio_stream_survives_an_exception_in_the_callback(fakemic: FakeMic) -> None:
    """A sink that raises once costs that chunk, not the stream: PortAudio keeps calling back
    (an exception escaping the callback would make PyAudio abort the stream after 2 chunks)."""
    result = fakemic.run("raising", "fakemic", want=50)
    summary = {k: result[k] for k in ("chunks", "callback_errors", "error", "overflows")}
    assert result["chunks"] >= 50, f"the stream stopped after the exception: {summary}"
    assert result["callback_errors"] == 1, summary
    assert "sink failed on the third chunk" in result["error"]
    if result["overflows"] == 0:  # then every other chunk is the device's, in order
        pcm: bytes = result["pcm"]
        size = CHUNK * 2
        assert len(pcm) + size < len(fakemic.samples), len(pcm)
        assert pcm[: 2 * size] == fakemic.samples[: 2 * size]
        assert pcm[2 * size :] == fakemic.samples[3 * size : len(pcm) + size]
