"""The battery or the disk runs out during a recording -- handled by the product's own supervisor.

The real :class:`Supervisor`, :class:`RecordingControl`, :class:`PowerWatch` and
:class:`StorageWatch` run against a simulated battery and a quota disk on a test clock; only the
recorder is a small stand-in that writes one second of bytes per tick into the real evidence
store (open, roll, seal), so what is logged and sealed is checked with the offline verifier.
No copy of the reaction rules: a change to the supervisor shows here.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from agent.evidence.age import Identity
from agent.evidence.canonical import parse_canonical
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import ClockInfo, MediaInfo, SegmentInfo, Timestamp, parse_envelope
from agent.evidence.store import EvidenceStore, OpenSegment
from agent.evidence.verify import verify
from agent.ports import Capture
from agent.power.battery_policy import BatteryPolicy
from agent.power.projection import PowerProjector
from agent.recording.control import RecordingControl
from agent.storage.reclaim import evict_acknowledged
from agent.storage.space_policy import BitrateMeter, StoragePolicy
from agent.upkeep.reactions import Supervised, Supervisor
from agent.upkeep.watches import FrameWatchdog, PowerWatch, StorageWatch
from hw.errors import RecordingRefused
from hw.power_sim import SimBattery
from hw.storage import Storage
from hw.storage_fs import FsStorage
from hw.storage_sim import SimStorage
from tests.recording.port_fakes import FakeIndicators, FakePreRoll
from tests.tools.receipts import make_station

pytestmark = pytest.mark.timeout(120)

BYTES_PER_S = 8_000
SEGMENT_S = 30


class Clock:
    """Monotonic seconds, advanced by hand; starts at the real monotonic time because the
    admission measures storage at ``time.monotonic()``, as the controller's ticks do."""

    def __init__(self) -> None:
        self.t = float(int(time.monotonic()))

    def __call__(self) -> float:
        return self.t


def utc(t: float) -> str:
    minutes, seconds = divmod(int(t), 60)
    hours, minutes = divmod(minutes, 60)
    return f"2026-11-27T{10 + hours % 14:02d}:{minutes:02d}:{seconds:02d}.000000Z"


class StoreRecorder:
    """The recorder reduced to segments in the real evidence store: one second of bytes per
    :meth:`second`, a roll every ``SEGMENT_S``, a seal on stop."""

    def __init__(self, store: EvidenceStore, clock: Clock, meter: BitrateMeter) -> None:
        self.store, self.clock, self.meter = store, clock, meter
        self.state = "standby"
        self.fault_reason: str | None = None
        self.recording_id: str | None = None
        self.preroll = FakePreRoll()
        self.sealed: list[Any] = []
        self.frames_gap = 0
        self.stops: list[str] = []
        self._segment: OpenSegment | None = None
        self._seq = 0

    def _stamp(self) -> Timestamp:
        return Timestamp(utc(self.clock.t), int(self.clock.t * 1e6))

    def _open(self) -> None:
        assert self.recording_id is not None
        self._segment = self.store.open_segment(SegmentInfo(
            self.recording_id, self._seq, self._stamp(), ClockInfo("gps", 20), officer_id="O-17"))
        self._seq += 1

    def _seal(self) -> None:
        assert self._segment is not None
        self.sealed.append(self.store.seal(self._segment, end=self._stamp(),
                                           media=MediaInfo(duration_us=SEGMENT_S * 1_000_000)))
        self._segment = None

    def start(self, *, reason: str = "button", flags: list[str] | None = None) -> str:
        self.state, self.recording_id, self._seq = "recording", uuid.uuid4().hex, 0
        self._open()
        return self.recording_id

    def stop(self, *, reason: str = "button") -> None:
        self.stops.append(reason)
        self._seal()
        self.state = "standby"
        self.meter.pause()

    def second(self) -> None:
        """One second of media while recording."""
        if self.state != "recording" or self._segment is None:
            return
        self._segment.sink.write(bytes([int(self.clock.t) % 256]) * BYTES_PER_S)
        self.meter.add(BYTES_PER_S, self.clock.t)
        if int(self.clock.t) % SEGMENT_S == 0:
            self._seal()
            self._open()

    def bookmark(self, label: str, **kw: Any) -> bool:
        return False

    def fault(self, reason: str) -> None:
        self.state, self.fault_reason = "fault", reason

    def clear_fault(self) -> None:
        self.state, self.fault_reason = "standby", None

    def set_segment_s(self, seconds: float) -> None:
        pass

    def tick(self, now_mono_us: int) -> None:
        pass

    def drain(self) -> None:
        pass

    @property
    def segments(self) -> int:
        return len(self.sealed)


class Unit:
    """The supervised recorder on a simulated battery and a quota disk."""

    def __init__(self, data_dir: Path, agency: Identity, *, battery_wh: float,
                 quota_bytes: int = 64 << 20, percent: float = 100.0,
                 disk: Storage | None = None, station_keys: tuple[bytes, ...] = ()) -> None:
        self.clock = Clock()
        self.disk: Storage = disk if disk is not None else SimStorage(data_dir, quota_bytes)
        self.battery = SimBattery(battery_wh, percent=percent, clock=self.clock)
        key = DeviceKey.generate(data_dir / "keys" / "device.key")
        self.store = EvidenceStore(data_dir, key=key, recipients=[agency.recipient],
                                   encrypt=True, device_id="BC-0001",
                                   open_append=self.disk.open_append, station_keys=station_keys)
        self.meter = BitrateMeter(BYTES_PER_S)
        self.recorder = StoreRecorder(self.store, self.clock, self.meter)
        self.indicators = FakeIndicators()
        power = PowerWatch(self.battery, BatteryPolicy(300, 60, 10), PowerProjector(), poll_s=1)
        self.storage = StorageWatch(self.disk, StoragePolicy(120, 2, segment_s=SEGMENT_S,
                                                             hysteresis_s=30),
                                    self.meter, poll_s=1)
        self.control = RecordingControl(
            recorder=self.recorder, indicators=self.indicators, store=self.store,
            storage=self.storage, battery=power, meter=self.meter, camera=None,
            seal_still=lambda *a, **k: {}, profile="body")
        capture = Capture(None, None, lambda f: None, lambda c: None,
                          lambda: int(self.clock.t * 10))  # audio keeps flowing
        self.supervisor = Supervisor(Supervised(
            recorder=self.recorder, control=self.control, indicators=self.indicators,
            store=self.store, capture=capture, frame_watchdog=FrameWatchdog(stall_after_s=5),
            battery=power, storage=self.storage,
            evict=lambda: evict_acknowledged(self.store, self.storage, data_dir, min_age_s=0),
            open_append=self.disk.open_append, data_dir=data_dir, status=lambda: {},
            profile="body", stall_after_s=5))

    def run(self, seconds: int) -> None:
        """Record and supervise, one second per step, until the recording stops."""
        for _ in range(seconds):
            self.clock.t += 1
            self.recorder.second()
            self.supervisor.tick(self.clock.t)
            if self.recorder.state != "recording":
                return

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in (parse_canonical(d) for _, d in self.store.log.entries())
                if e.get("kind") == "event" and e.get("type") == kind]

    def finish(self, data_dir: Path, agency: Identity) -> None:
        """Close the store; every segment is sealed and the evidence verifies."""
        self.store.close()
        media = sorted((data_dir / "recordings").glob("*/*.mp4.age"))
        assert len(media) == self.recorder.segments
        assert sorted((data_dir / "recordings").glob("*/*.open.json")) == []
        report = verify(data_dir, identity=[agency])
        assert report.ok, report.render()


@pytest.fixture
def agency() -> Identity:
    return Identity.generate()


def test_a_draining_battery_warns_then_stops_the_recording(tmp_path: Path,
                                                           agency: Identity) -> None:
    """0.5 Wh at the simulated recording load: a warning first, then at critical the supervisor
    stops with reason ``low_battery`` and logs ``low_battery_shutdown``; a new start is refused
    by the same admission; everything recorded is sealed and verifies."""
    data = tmp_path / "data"
    unit = Unit(data, agency, battery_wh=0.5)
    unit.control.start_recording("button")
    unit.run(3600)
    assert unit.recorder.stops == ["low_battery"]
    assert "warning" in unit.indicators.calls
    [event] = unit.events("low_battery_shutdown")
    assert event["reasons"] == ["runtime_critical"]
    assert unit.control.stop_reason == "low_battery"
    with pytest.raises(RecordingRefused, match="battery critical"):
        unit.control.start_recording("button")
    unit.finish(data, agency)


def test_a_disk_filled_mid_recording_stops_it_after_trying_to_make_room(
        tmp_path: Path, agency: Identity) -> None:
    """Something else eats the disk: nothing is acknowledged, so eviction frees nothing; the
    supervisor stops with ``storage_full`` and logs it; what was recorded verifies."""
    data = tmp_path / "data"
    unit = Unit(data, agency, battery_wh=18.5, quota_bytes=8 << 20)
    unit.control.start_recording("button")
    unit.run(40)
    reserve = StoragePolicy(120, 2, segment_s=SEGMENT_S).reserve_bytes(BYTES_PER_S)
    unit.disk.fill(unit.disk.read().free_bytes - reserve + 100_000)
    unit.run(600)
    assert unit.recorder.stops == ["storage_full"]
    [event] = unit.events("storage_full")
    assert event["reasons"] == ["below_reserve"]
    assert unit.events("evicted") == []
    with pytest.raises(RecordingRefused, match="storage full"):
        unit.control.start_recording("button")
    unit.finish(data, agency)


def test_undervoltage_that_persists_stops_the_recording(tmp_path: Path,
                                                        agency: Identity) -> None:
    """A full pack whose supply sags for longer than the grace period (10 s) stops cleanly:
    ``low_battery`` with the reason ``undervoltage_persistent``, everything sealed."""
    data = tmp_path / "data"
    unit = Unit(data, agency, battery_wh=18.5)
    unit.control.start_recording("button")
    unit.run(45)
    sagged = unit.clock.t
    unit.battery.undervoltage(True)
    unit.run(60)
    assert unit.recorder.stops == ["low_battery"]
    assert unit.clock.t - sagged == pytest.approx(11, abs=1)
    [event] = unit.events("low_battery_shutdown")
    assert event["reasons"] == ["undervoltage_persistent"]
    unit.finish(data, agency)


def test_a_pack_that_dies_early_stops_at_the_collapse(tmp_path: Path,
                                                      agency: Identity) -> None:
    """A worn pack whose capacity collapses at 60 %: the next reading is critical and the
    supervisor stops at once (it cannot foresee a collapse); everything is sealed."""
    data = tmp_path / "data"
    unit = Unit(data, agency, battery_wh=1.0, percent=62)
    unit.battery.die_at(60)
    start = unit.clock.t
    unit.control.start_recording("button")
    unit.run(3600)
    assert unit.recorder.stops == ["low_battery"]
    # 2 % of 1 Wh at the simulated load is ~18 s
    assert unit.clock.t - start == pytest.approx(18, abs=2)
    assert "died" in [e.what for e in unit.battery.history]
    unit.finish(data, agency)


def test_a_real_tmpfs_filled_by_another_file_stops_the_recording(small_fs: Path,
                                                                 agency: Identity) -> None:
    """The disk scenario on a real 8 MiB tmpfs, filled by another file: statvfs drives the
    watch, the supervisor stops with ``storage_full`` and what was recorded verifies."""
    data = small_fs / "data"
    unit = Unit(data, agency, battery_wh=18.5, disk=FsStorage(small_fs))
    unit.control.start_recording("button")
    unit.run(40)
    reserve = StoragePolicy(120, 2, segment_s=SEGMENT_S).reserve_bytes(BYTES_PER_S)
    (small_fs / "other-data.bin").write_bytes(b"\0" * (unit.disk.read().free_bytes - reserve
                                                        + 100_000))
    unit.run(600)
    assert unit.recorder.stops == ["storage_full"]
    [event] = unit.events("storage_full")
    assert event["reasons"] == ["below_reserve"]
    unit.finish(data, agency)


def test_a_full_disk_of_unacknowledged_evidence_evicts_nothing(tmp_path: Path,
                                                               agency: Identity) -> None:
    """The recording fills the disk itself and nothing is acknowledged: it warns first, the
    supervisor's eviction frees nothing (no file changes) and it stops with storage_full;
    once a station receipts the first two segments, exactly those are evicted, each eviction
    citing its logged receipt, and the rest is untouched."""
    data = tmp_path / "data"
    station = make_station(tmp_path / "station")
    unit = Unit(data, agency, battery_wh=18.5, quota_bytes=8 << 20,
                station_keys=(station.public,))
    unit.control.start_recording("button")
    unit.run(10_000)
    assert unit.recorder.stops == ["storage_full"]
    assert "warning" in unit.indicators.calls  # a slow fill warns first
    assert unit.events("eviction") == []
    manifests = sorted((data / "recordings").glob("*/*.manifest.json"))
    media = [m.parent / parse_canonical(m.read_bytes())["manifest"]["file"]["name"]
             for m in manifests]
    before = {p: p.read_bytes() for p in media}
    ack_index = [unit.store.accept_receipt(station.receipt(parse_envelope(m.read_bytes())),
                                           origin={"via": "mqtt", "command_id": "a1"})
                 for m in manifests[:2]]
    freed = evict_acknowledged(unit.store, unit.storage, data, min_age_s=0)
    assert freed > 0
    evictions = unit.events("eviction")
    assert [(e["device_seq"], e["ack_index"]) for e in evictions] == list(
        zip([0, 1], ack_index, strict=True))
    assert [p.exists() for p in media[:2]] == [False, False]
    assert {p: p.read_bytes() for p in media[2:]} == {p: before[p] for p in media[2:]}
    unit.store.close()
    report = verify(data, identity=[agency], station_keys=[station.public])
    assert report.ok, report.render()
