"""Evidence failures still fault the recorder -- cleanly, with what was recorded sealed.

A storage failure when the next segment is opened (journal, file) is evidence failing: the
recorder must enter ``fault`` (the officer is told) with the segment before sealed and flagged,
not let the exception escape from the packet that caused the roll with the state still
``recording``. Faults are injected by a wrapper around the real store port; the recorder runs
audio-only (real AAC) into a real :class:`EvidenceStore` in ``tmp_path``, instantly.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from agent.evidence.journal import JOURNAL_SUFFIX, MANIFEST_SUFFIX
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import ClockInfo, parse_envelope
from agent.evidence.store import EvidenceStore
from agent.evidence.verify import verify
from agent.recording.aac import AacEncoder
from agent.recording.recorder import Recorder, RecorderState
from agent.recording.store_port import ManifestContext, StorePort
from hw.audio import AudioChunk, AudioFormat
from hw.errors import RecorderError, StorageReadOnly

AUDIO = AudioFormat(48_000, 1)
CHUNK_US = 20_000
BASE_US = 10_000_000
EPOCH = dt.datetime(2026, 11, 27, 10, 0, tzinfo=dt.UTC)


class OpenFails:
    """Wraps the real port: the ``fail_at``-th open (0-based) and those after it fail, until
    the card comes back (``healthy``)."""

    def __init__(self, port: StorePort, fail_at: int) -> None:
        self.port, self.fail_at, self.opens, self.healthy = port, fail_at, 0, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.port, name)

    def open_segment(self, **kw: Any) -> Any:
        self.opens += 1
        if self.opens > self.fail_at and not self.healthy:
            raise StorageReadOnly("storage is read-only (remounted after an I/O error)")
        return self.port.open_segment(**kw)


def build(data: Path, fail_at: int) -> tuple[Recorder, OpenFails, EvidenceStore, list[str]]:
    DeviceKey.generate(data / "keys" / "device.key")
    store = EvidenceStore(data, key=DeviceKey.load(data / "keys" / "device.key"), recipients=[],
                          encrypt=False, device_id="BC-0001")
    utc = lambda us: (EPOCH + dt.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: E731
    port = OpenFails(StorePort(store, ManifestContext(utc, lambda: ClockInfo("gps", 20)),
                               video=None, audio=AUDIO, audio_bitrate=64_000), fail_at)
    events: list[str] = []
    encoder = AacEncoder(AUDIO, bitrate=64_000)
    rec = Recorder(port=port, video=None, audio=AUDIO, audio_extradata=encoder.extradata,
                   audio_bitrate=64_000, segment_s=0.5, prerecord_s=0.3,
                   on_event=lambda kind, data: events.append(kind))
    return rec, port, store, events


def feed(rec: Recorder, seconds: float, start: int) -> int:
    """Deliver ``seconds`` of AAC from chunk ``start``; returns the next chunk number."""
    encoder = AacEncoder(AUDIO, bitrate=64_000)
    pcm = bytes(2 * AUDIO.sample_rate * CHUNK_US // 1_000_000)
    end = start + int(seconds * 1_000_000) // CHUNK_US
    for i in range(start, end):
        for p in encoder.encode(AudioChunk(pcm, BASE_US + i * CHUNK_US, len(pcm) // 2)):
            rec.on_packet(p)
    return end


def manifests(data: Path) -> list[dict[str, Any]]:
    found = [parse_envelope(p.read_bytes()).manifest
             for p in (data / "recordings").glob(f"*/*{MANIFEST_SUFFIX}")]
    return sorted(found, key=lambda m: (m["start"]["mono_us"]))


def test_a_storage_failure_at_a_roll_faults_with_the_last_segment_sealed(tmp_path: Path) -> None:
    """The third open fails: the recorder is in fault (no exception from the packet), the two
    segments before are sealed, the second flagged ``fault``, and nothing overlaps; once the
    card is back and the fault cleared, a new recording starts."""
    rec, port, store, events = build(tmp_path / "data", fail_at=2)
    chunk = feed(rec, 0.5, 0)
    rec.start()
    chunk = feed(rec, 3.0, chunk)  # would roll about six times

    assert rec.state == RecorderState.FAULT and str(rec.fault_reason).startswith("storage:")
    assert events == ["recording_started", "segment_sealed", "segment_sealed", "fault"]
    sealed = manifests(tmp_path / "data")
    assert [("fault" in m["flags"]) for m in sealed] == [False, True]
    first, second = (m["media"]["audio"] for m in sealed)
    assert abs(second["first_pts_us"] - first["end_us"]) <= 1
    assert not list((tmp_path / "data" / "recordings").glob(f"*/*{JOURNAL_SUFFIX}"))

    port.healthy = True
    rec.clear_fault()
    rec.start()
    feed(rec, 0.3, chunk)
    rec.stop()
    rec.tick(BASE_US * 10)
    store.close()
    assert rec.state == RecorderState.STANDBY and len(manifests(tmp_path / "data")) >= 3
    assert verify(tmp_path / "data").ok


def test_a_storage_failure_at_the_press_answers_the_start_with_the_fault(tmp_path: Path) -> None:
    """The first open fails while the pre-roll is written: start() says why, the recorder is in
    fault, and later packets go to the ring instead of retrying the open at every packet."""
    rec, port, store, events = build(tmp_path / "data", fail_at=0)
    chunk = feed(rec, 0.5, 0)
    with pytest.raises(RecorderError, match=r"could not start: storage: .*read-only"):
        rec.start()
    feed(rec, 1.0, chunk)
    store.close()
    assert rec.state == RecorderState.FAULT and port.opens == 1
    assert events == ["recording_started", "fault"]
    assert list((tmp_path / "data" / "recordings").glob("*/*")) == []
