"""Nothing outside evidence can stop or damage a recording.

The recorder runs instantly -- no agent, no threads but (in one variant) the real segment
worker, no sleeps -- over synthetic packets (real H.264 access units from an ffmpeg clip, real
AAC from the agent's encoder) into a real :class:`EvidenceStore` in ``tmp_path``. Faults are
injected as wrappers around the real ports and callbacks, never inside the state machine:
the outbox raises :class:`SyncError`, the ``published-checkpoint.json`` write raises
``OSError``, the port's announcement of a seal raises, the store's after-seal hook (Content
Credentials) raises, or the manifest's context (GPS track, matter) cannot be read -- at every
seal -- and the event consumer raises at every event.
Each test shows the recording stays ``recording`` across several rolls, every frame lands in
exactly one sealed segment (indices contiguous across segments, no missing frames), no
journal is left and the folder verifies.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.atomic import atomic_write
from agent.evidence.journal import JOURNAL_SUFFIX, MANIFEST_SUFFIX
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import ClockInfo, GpsSummary, SignedManifest, parse_envelope
from agent.evidence.store import EvidenceStore
from agent.evidence.verify import verify
from agent.recording.aac import AacEncoder
from agent.recording.packets import MediaPacket
from agent.recording.recorder import Recorder, RecorderState
from agent.recording.segment_worker import SegmentWorker
from agent.recording.store_port import ManifestContext, StorePort
from hw.audio import AudioChunk, AudioFormat
from hw.camera import VideoFormat
from hw.camera_replay import load_clip
from hw.errors import SyncError
from hw.still import Still

FPS = 30
GOP = 15
INTERVAL_US = 1_000_000 // FPS
AUDIO = AudioFormat(48_000, 1)
CHUNK_US = 20_000  # the microphone delivers 20 ms chunks ...
AUDIO_LAG_US = 60_000  # ... that reach the controller this long after the frame of their time
BASE_US = 10_000_000
EPOCH = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def units(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[bytes, bool]]:
    """One second of H.264 access units (SPS/PPS on every IDR, a keyframe every GOP)."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size=160x120:rate={FPS}", "-t", "1", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", str(GOP), "-bf", "0", "-pix_fmt", "yuv420p", str(path)],
                   check=True, timeout=60)
    return list(load_clip(path).frames)


# --- fault injection: wrappers around the real consumers and ports ---------------------------
class Failing:
    """Wraps a consumer: it runs, then ``error`` is raised -- on every call."""

    def __init__(self, consumer: Callable[..., Any], error: Exception) -> None:
        self.consumer, self.error, self.calls = consumer, error, 0

    def __call__(self, *args: Any) -> None:
        self.calls += 1
        self.consumer(*args)
        raise self.error


class SyncStandIn:
    """What the fleet sync does with a sealed segment: queue its manifest in the outbox, then
    record the published checkpoint's size in ``state/published-checkpoint.json``. Both are
    ports, so a test can wrap either in :class:`Failing`."""

    def __init__(self, store: EvidenceStore) -> None:
        self.store = store
        self.outbox: list[dict[str, Any]] = []
        self.state_file = store.data_dir / "state" / "published-checkpoint.json"
        self.enqueue: Callable[[dict[str, Any]], None] = self.outbox.append
        self.write_state: Callable[[Path, bytes], None] = atomic_write

    def segment_sealed(self, signed: SignedManifest) -> None:
        self.enqueue(json.loads(signed.envelope()))
        self.write_state(self.state_file, json.dumps({"size": self.store.log.size}).encode())


class AnnounceRaises:
    """Wraps the real :class:`StorePort`: announcing a seal does its work, then raises."""

    def __init__(self, port: StorePort) -> None:
        self.port, self.calls = port, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.port, name)

    def sealed(self, result: SignedManifest) -> dict[str, Any]:
        self.calls += 1
        self.port.sealed(result)
        raise RuntimeError("announcement broke after the seal")


# --- the bench ---------------------------------------------------------------------------------
def utc_for_mono_us(mono_us: int) -> str:
    return (EPOCH + dt.timedelta(microseconds=mono_us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Bench:
    """A recorder over a real store, fed a timeline of video and (lagging) audio packets."""

    def __init__(self, data: Path, units: list[tuple[bytes, bool]], *, fault: str,
                 threaded: bool) -> None:
        DeviceKey.generate(data / "keys" / "device.key")
        self.after_seal = Failing(lambda media, signed: None, RuntimeError("credential broken"))
        self.store = EvidenceStore(data, key=DeviceKey.load(data / "keys" / "device.key"),
                                   recipients=[], encrypt=False, device_id="BC-0001",
                                   after_seal=self.after_seal if fault == "after_seal" else None)
        self.sync = SyncStandIn(self.store)
        if fault == "outbox":
            self.sync.enqueue = Failing(self.sync.outbox.append, SyncError("outbox is full"))
        elif fault == "state_file":
            self.sync.write_state = Failing(atomic_write, OSError(30, "Read-only file system"))
        ctx = ManifestContext(utc_for_mono_us, lambda: ClockInfo("gps", 20))
        if fault == "context":  # the GPS track, the matter and the track opening all broken
            ctx.gps_summary = Failing(lambda start, end: GpsSummary(), RuntimeError("track broken"))
            ctx.matter = Failing(lambda: None, KeyError("matter"))
            ctx.segment_opened = Failing(lambda start: None, ValueError("no track"))
        self.port = StorePort(self.store, ctx,
                              video=VideoFormat(160, 120, FPS, 400_000, gop=GOP), audio=AUDIO,
                              audio_bitrate=64_000, on_sealed=self.sync.segment_sealed)
        self.recorder_port: Any = AnnounceRaises(self.port) if fault == "port" else self.port
        self.events: list[str] = []
        self.on_event = Failing(lambda kind, data: self.events.append(kind),
                                OSError(5, "feedback LED gone"))
        self.worker = SegmentWorker() if threaded else None
        self.aac = AacEncoder(AUDIO, bitrate=64_000)
        self.rec = Recorder(port=self.recorder_port, video=VideoFormat(160, 120, FPS, 400_000, gop=GOP),
                            audio=AUDIO, audio_extradata=self.aac.extradata, audio_bitrate=64_000,
                            prerecord_s=1.0, segment_s=1.0, on_event=self.on_event,
                            worker=self.worker)
        self.units = units
        self.frame = 0
        self.audio_us = BASE_US

    def feed(self, frames: int) -> Iterator[MediaPacket]:
        """Deliver ``frames`` video frames with the audio that arrived meanwhile."""
        for _ in range(frames):
            data, key = self.units[self.frame % len(self.units)]
            pts = BASE_US + self.frame * INTERVAL_US
            self.frame += 1
            yield MediaPacket("video", data, pts, INTERVAL_US, key, self.frame - 1)
            while self.audio_us + CHUNK_US + AUDIO_LAG_US <= pts:
                pcm = bytes(2 * AUDIO.sample_rate * CHUNK_US // 1_000_000)
                yield from self.aac.encode(AudioChunk(pcm, self.audio_us, len(pcm) // 2))
                self.audio_us += CHUNK_US

    def run(self, frames: int, *, each: Callable[[], None] = lambda: None) -> None:
        for packet in self.feed(frames):
            self.rec.on_packet(packet)
            self.rec.poll()
            each()

    def manifests(self) -> list[dict[str, Any]]:
        found = [parse_envelope(p.read_bytes()).manifest
                 for p in (self.store.data_dir / "recordings").glob(f"*/*{MANIFEST_SUFFIX}")]
        return sorted(found, key=lambda m: int(m["seq"]))

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
        self.store.close()


@pytest.mark.parametrize("threaded", [False, True], ids=["inline", "segment_worker"])
@pytest.mark.parametrize("fault", ["outbox", "state_file", "port", "context", "after_seal"])
def test_failing_side_channels_at_every_seal_and_roll_lose_nothing(
        tmp_path: Path, units: list[tuple[bytes, bool]], fault: str, threaded: bool) -> None:
    """With the sealed-segment announcement and every recorder event failing, a recording
    over several rolls stays ``recording``; every frame is in exactly one sealed segment; the
    folder verifies; the failures are counted, not raised."""
    bench = Bench(tmp_path / "data", units, fault=fault, threaded=threaded)
    rec = bench.rec
    bench.run(2 * FPS)  # two seconds of pre-event buffer (it keeps 1 s and up to a GOP more)
    rec.start()
    states: set[str] = set()
    bench.run(6 * FPS, each=lambda: states.add(rec.state))
    last_index = bench.frame - 1
    rec.stop()
    bench.run(FPS // 2)  # the audio tail reaches the last segment; later frames go to the ring
    rec.drain()
    bench.close()

    assert states == {RecorderState.RECORDING}, "a side-channel failure changed the state"
    assert rec.state == "standby" and rec.fault_reason is None
    segments = bench.manifests()
    assert len(segments) >= 5, "the recording did not roll several times"
    assert "preroll" in segments[0]["flags"] and segments[0]["media"]["video"]["first_index"] % GOP == 0
    assert segments[-1]["media"]["video"]["last_index"] == last_index
    for before, after in itertools.pairwise(segments):
        assert after["media"]["video"]["first_index"] == before["media"]["video"]["last_index"] + 1
    assert all(m["media"]["video"]["missing_frames"] == 0 for m in segments)
    first = segments[0]["media"]["video"]["first_index"]
    assert sum(m["media"]["frames"] for m in segments) == last_index - first + 1
    assert not list((tmp_path / "data" / "recordings").glob(f"*/*{JOURNAL_SUFFIX}"))
    report = verify(tmp_path / "data")
    assert report.ok, report

    # The failures happened, every time, and were counted rather than raised.
    assert len(rec.sealed) == len(segments)
    assert bench.port.announce_sealed.calls == len(segments)
    if fault == "after_seal":
        assert bench.after_seal.calls == len(segments)
        assert bench.store.after_seal is not None and bench.store.after_seal.failures == len(segments)
    if fault == "context":
        assert all({"gps_unavailable", "matter_unavailable"} <= set(m["flags"]) for m in segments)
        assert bench.port.context_failures == 3 * len(segments)
    if fault == "port":
        assert bench.recorder_port.calls == len(segments)
        assert rec.sealed.last is None and "segment_sealed" not in bench.events
        assert bench.port.announce_sealed.failures == 0
    elif fault in ("context", "after_seal"):
        assert bench.port.announce_sealed.failures == 0
    else:
        assert bench.port.announce_sealed.failures == len(segments)
        assert rec.sealed.last is not None and rec.sealed.last["seq"] == segments[-1]["seq"]
        assert bench.events.count("segment_sealed") == len(segments)
    assert "fault" not in bench.events and bench.events[0] == "recording_started"
    assert bench.events[-1] == "recording_stopped"
    assert rec.events.failures == bench.on_event.calls == len(bench.events)
    assert bench.port.side_channel_failures == {"port": 0, "context": 3 * len(segments)}.get(
        fault, len(segments))


def test_a_failing_announcement_of_a_still_returns_its_manifest(tmp_path: Path) -> None:
    """A still picture whose announcement (outbox) fails is sealed and reported as sealed."""
    data = tmp_path / "data"
    DeviceKey.generate(data / "keys" / "device.key")
    store = EvidenceStore(data, key=DeviceKey.load(data / "keys" / "device.key"), recipients=[],
                          encrypt=False, device_id="BC-0001")
    sync = SyncStandIn(store)
    sync.enqueue = Failing(sync.outbox.append, SyncError("outbox is full"))
    port = StorePort(store, ManifestContext(utc_for_mono_us, lambda: ClockInfo("gps", 20)),
                     video=None, audio=None, audio_bitrate=0, on_sealed=sync.segment_sealed)
    manifest = port.seal_still(Still(b"\xff\xd8still\xff\xd9", 2, 2, BASE_US), recording_id="a" * 32,
                               flags=[], bookmarks=[])
    store.close()
    assert manifest["file"]["name"].endswith(".jpg")
    assert port.announce_sealed.failures == 1 and "outbox is full" in str(port.announce_sealed.last_error)
    assert not list((data / "recordings").glob(f"*/*{JOURNAL_SUFFIX}"))
    assert verify(data).ok


def test_a_failing_clock_reading_seals_with_the_system_clock_and_says_so(tmp_path: Path) -> None:
    """If the clock code fails, the still is sealed anyway, stamped by the system clock with a
    source of ``none`` (nothing bounds its error) and flagged ``clock_unavailable``."""
    data = tmp_path / "data"
    DeviceKey.generate(data / "keys" / "device.key")
    store = EvidenceStore(data, key=DeviceKey.load(data / "keys" / "device.key"), recipients=[],
                          encrypt=False, device_id="BC-0001")
    broken = Failing(utc_for_mono_us, RuntimeError("discipline broken"))
    port = StorePort(store, ManifestContext(broken, lambda: ClockInfo("gps", 20)),
                     video=None, audio=None, audio_bitrate=0)
    manifest = port.seal_still(Still(b"\xff\xd8still\xff\xd9", 2, 2, time.monotonic_ns() // 1000),
                               recording_id="b" * 32, flags=[], bookmarks=[])
    store.close()
    assert manifest["clock"] == {"source": "none", "est_error_ms": None}
    assert "clock_unavailable" in manifest["flags"] and port.context_failures >= 1
    assert manifest["start"]["utc"].startswith(str(dt.datetime.now(dt.UTC).year))
    assert verify(data).ok
