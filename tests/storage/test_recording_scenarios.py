"""Scenarios: the battery or the disk runs out during a recording, with the real evidence store.

A small recorder loop stands in for the controller: it writes one second of media per tick into
the evidence store's sink, rolls segments, polls the battery and storage policies exactly as
``agent.watch`` does, and on a critical battery or a full disk seals the open segment, logs the
event and stops. The evidence is then checked with the offline verifier (signatures, log,
ciphertext and plaintext hashes with the agency identity).
"""

from __future__ import annotations

import errno
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from agent.evidence.age import ENCRYPTED_CHUNK_SIZE, Identity, header_length
from agent.evidence.canonical import parse_canonical
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import ClockInfo, MediaInfo, SegmentInfo, Timestamp, parse_envelope
from agent.evidence.store import EvidenceStore, OpenSegment
from agent.evidence.verify import verify
from agent.power.policy import BatteryPolicy
from agent.power.projection import PowerProjector
from agent.storage.eviction import SealedSegment
from agent.storage.policy import BitrateMeter, StoragePolicy
from hw.errors import StorageFull, StorageReadOnly, StorageWriteError
from hw.power_sim import SimBattery
from hw.storage import Storage
from hw.storage_fs import FsStorage
from hw.storage_sim import SimStorage
from tests.tools.receipts import make_station

pytestmark = pytest.mark.timeout(120)

BYTES_PER_S = 8_000
SEGMENT_S = 30


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def utc(t: float) -> str:
    minutes, seconds = divmod(int(t), 60)
    hours, minutes = divmod(minutes, 60)
    return f"2026-11-27T{10 + hours:02d}:{minutes:02d}:{seconds:02d}.000000Z"


@dataclass
class Recorder:
    """The controller's reaction to the policies, reduced to what these scenarios need."""

    store: EvidenceStore
    disk: Storage
    battery: SimBattery
    clock: Clock
    battery_policy: BatteryPolicy = field(default_factory=lambda: BatteryPolicy(300, 60, 10))
    storage_policy: StoragePolicy = field(
        default_factory=lambda: StoragePolicy(120, 2, segment_s=SEGMENT_S, hysteresis_s=30))
    projector: PowerProjector = field(default_factory=PowerProjector)
    meter: BitrateMeter = field(default_factory=lambda: BitrateMeter(BYTES_PER_S))
    segment: OpenSegment | None = None
    seq: int = 0
    recording_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    warnings: list[tuple[float, str]] = field(default_factory=list)
    stopped_because: str | None = None

    def _open(self) -> None:
        self.segment = self.store.open_segment(SegmentInfo(
            self.recording_id, self.seq, Timestamp(utc(self.clock.t), int(self.clock.t * 1e6)),
            ClockInfo("gps", 20), officer_id="O-17"))
        self.seq += 1

    def _seal(self) -> None:
        assert self.segment is not None
        self.store.seal(self.segment, end=Timestamp(utc(self.clock.t), int(self.clock.t * 1e6)),
                        media=MediaInfo(duration_us=SEGMENT_S * 1_000_000))
        self.segment = None

    def _stop(self, event: str, reasons: tuple[str, ...]) -> None:
        self._seal()
        self.store.log_event(event, reasons=list(reasons), recording_id=self.recording_id)
        self.battery.set_load("standby")
        self.meter.pause()
        self.stopped_because = event

    def start(self) -> bool:
        """Start if both policies admit it (as the controller does on a press)."""
        self.storage_policy.evaluate(self.disk.read(), self.meter.rate)
        if not (self.battery_policy.can_start() and self.storage_policy.can_start()):
            return False
        self.battery.set_load("recording")
        self._open()
        return True

    def run(self, max_s: int) -> None:
        """Record one second per tick until a policy stops the recording."""
        for _ in range(max_s):
            self.clock.t += 1
            assert self.segment is not None
            self.segment.sink.write(bytes([int(self.clock.t) % 256]) * BYTES_PER_S)
            self.meter.add(BYTES_PER_S, self.clock.t)
            if int(self.clock.t) % SEGMENT_S == 0:
                self._seal()
                self._open()
            reading = self.battery.read()
            battery = self.battery_policy.evaluate(
                reading, self.projector.update(reading, load="recording", now=self.clock.t),
                self.clock.t)
            storage = self.storage_policy.evaluate(self.disk.read(), self.meter.rate)
            for verdict in (battery.level, storage.level):
                if verdict == "warn" and (not self.warnings or self.warnings[-1][1] != verdict):
                    self.warnings.append((self.clock.t, verdict))
            if battery.critical:
                self._stop("low_battery_shutdown", battery.reasons)
                return
            if storage.level == "full":
                self._stop("storage_full", storage.reasons)
                return


@pytest.fixture
def agency() -> Identity:
    return Identity.generate()


def open_store(data_dir: Path, agency: Identity, disk: Storage,
               station_keys: tuple[bytes, ...] = ()) -> EvidenceStore:
    key_path = data_dir / "keys" / "device.key"
    key = DeviceKey.load(key_path) if key_path.exists() else DeviceKey.generate(key_path)
    return EvidenceStore(data_dir, key=key, recipients=[agency.recipient], encrypt=True,
                         device_id="BC-0001", open_append=disk.open_append,
                         station_keys=station_keys)


def events(store: EvidenceStore) -> list[dict[str, object]]:
    return [entry for entry in (parse_canonical(e) for _, e in store.log.entries())
            if entry.get("kind") == "event"]


def assert_all_sealed_and_verifiable(data_dir: Path, agency: Identity, segments: int) -> None:
    media = sorted((data_dir / "recordings").glob("*/*.mp4.age"))
    manifests = sorted((data_dir / "recordings").glob("*/*.manifest.json"))
    journals = sorted((data_dir / "recordings").glob("*/*.open.json"))
    assert len(media) == len(manifests) == segments
    assert journals == []
    report = verify(data_dir, identity=[agency])
    assert report.ok, report.render()


def test_battery_drains_through_warn_and_critical(tmp_path: Path, agency: Identity) -> None:
    """0.5 Wh at 4 W: warn at ≤5 min left, shutdown at ≤1 min; every segment sealed, event logged."""
    clock = Clock()
    data_dir = tmp_path / "data"
    disk = SimStorage(data_dir, 64 << 20)
    battery = SimBattery(0.5, clock=clock)
    store = open_store(data_dir, agency, disk)
    recorder = Recorder(store, disk, battery, clock)
    assert recorder.start()
    recorder.run(3600)
    assert recorder.stopped_because == "low_battery_shutdown"
    # 0.5 Wh lasts 450 s at 4 W: warn from 150 s, critical from 390 s.
    warned_at, level = recorder.warnings[0]
    assert level == "warn" and warned_at == pytest.approx(150, abs=2)
    assert clock.t == pytest.approx(390, abs=2)
    left = battery.read().energy_wh
    assert left is not None and left > 0  # stopped while energy remained
    assert not recorder.battery_policy.can_start()
    assert not recorder.start()
    [event] = [e for e in events(store) if e["type"] == "low_battery_shutdown"]
    assert event["reasons"] == ["runtime_critical"]
    store.close()
    assert_all_sealed_and_verifiable(data_dir, agency, recorder.seq)


def test_battery_undervoltage_persisting_stops_the_recording(tmp_path: Path,
                                                             agency: Identity) -> None:
    """A full pack whose supply sags for longer than the grace period stops cleanly too."""
    clock = Clock()
    data_dir = tmp_path / "data"
    disk = SimStorage(data_dir, 64 << 20)
    battery = SimBattery(18.5, clock=clock)
    store = open_store(data_dir, agency, disk)
    recorder = Recorder(store, disk, battery, clock)
    assert recorder.start()
    recorder.run(45)
    battery.undervoltage(True)
    recorder.run(60)
    assert recorder.stopped_because == "low_battery_shutdown"
    assert clock.t == pytest.approx(45 + 11, abs=1)
    [event] = [e for e in events(store) if e["type"] == "low_battery_shutdown"]
    assert event["reasons"] == ["undervoltage_persistent"]
    store.close()
    assert_all_sealed_and_verifiable(data_dir, agency, recorder.seq)


def _fill_scenario(data_dir: Path, agency: Identity, disk: Storage,
                   fill: Callable[[], None]) -> Recorder:
    clock = Clock()
    store = open_store(data_dir, agency, disk)
    recorder = Recorder(store, disk, SimBattery(18.5, clock=clock), clock)
    assert recorder.start()
    recorder.run(40)
    fill()  # something else eats the disk mid-recording
    recorder.run(600)
    assert recorder.stopped_because == "storage_full"
    assert not recorder.start()
    [event] = [e for e in events(store) if e["type"] == "storage_full"]
    assert event["reasons"] == ["below_reserve"]
    store.close()
    assert_all_sealed_and_verifiable(data_dir, agency, recorder.seq)
    return recorder


def test_simulated_disk_fills_mid_recording(tmp_path: Path, agency: Identity) -> None:
    """The quota is eaten down to just under the reserve: seal, log storage_full, stop."""
    data_dir = tmp_path / "data"
    disk = SimStorage(data_dir, 8 << 20)
    policy = StoragePolicy(120, 2, segment_s=SEGMENT_S)
    reserve = policy.reserve_bytes(BYTES_PER_S)

    def fill() -> None:
        disk.fill(disk.read().free_bytes - reserve + 100_000)

    _fill_scenario(data_dir, agency, disk, fill)
    assert disk.read().free_bytes > 0  # the reserve let the open segment finish
    assert [e.what for e in disk.history if e.what == "refused"] == []


def test_real_tmpfs_fills_mid_recording(small_fs: Path, agency: Identity) -> None:
    """The same on a real 8 MiB tmpfs filled by another file: the statvfs figures drive it."""
    data_dir = small_fs / "data"
    disk = FsStorage(small_fs)
    policy = StoragePolicy(120, 2, segment_s=SEGMENT_S)
    reserve = policy.reserve_bytes(BYTES_PER_S)

    def fill() -> None:
        hog = disk.read().free_bytes - reserve + 100_000
        (small_fs / "other-data.bin").write_bytes(b"\0" * hog)

    _fill_scenario(data_dir, agency, disk, fill)


def test_full_disk_of_unacknowledged_evidence_evicts_nothing(tmp_path: Path,
                                                             agency: Identity) -> None:
    """Every segment unacknowledged and the disk full: the plan is empty and nothing is deleted;
    once a station receipts the first two, exactly those are evicted, each eviction citing
    its logged receipt."""
    clock = Clock()
    data_dir = tmp_path / "data"
    disk = SimStorage(data_dir, 8 << 20)
    station = make_station(tmp_path / "station")
    store = open_store(data_dir, agency, disk, (station.public,))
    recorder = Recorder(store, disk, SimBattery(18.5, clock=clock), clock)
    assert recorder.start()
    recorder.run(10_000)
    assert recorder.stopped_because == "storage_full"
    assert recorder.warnings[0][1] == "warn"  # a slow fill warns first

    def sealed() -> list[SealedSegment]:
        out = []
        for manifest in sorted((data_dir / "recordings").glob("*/*.manifest.json")):
            m = parse_canonical(manifest.read_bytes())["manifest"]
            media = manifest.parent / m["file"]["name"]
            if media.exists():
                out.append(SealedSegment(media, media.stat().st_size, 0.0,
                                         store.acknowledged(m["device_seq"])))
        return out

    segments = sealed()
    before = {s.path: s.path.read_bytes() for s in segments}
    policy = recorder.storage_policy
    plan = policy.plan_eviction(segments, disk.read(), recorder.meter.rate, now=1e9)
    assert plan.paths == () and not plan.satisfied
    assert plan.kept_unacknowledged == len(segments)
    assert {p: p.read_bytes() for p in before} == before

    manifests = sorted((data_dir / "recordings").glob("*/*.manifest.json"))
    ack_index = [store.accept_receipt(station.receipt(parse_envelope(m.read_bytes())),
                                      origin={"via": "mqtt", "command_id": "a1"})
                 for m in manifests[:2]]
    plan = policy.plan_eviction(sealed(), disk.read(), recorder.meter.rate, now=1e9)
    assert plan.paths == tuple(s.path for s in segments[:2])
    for path in plan.paths:
        store.evict(path)
    evictions = [e for e in events(store) if e["type"] == "eviction"]
    assert [(e["device_seq"], e["ack_index"]) for e in evictions] == list(zip([0, 1], ack_index,
                                                                              strict=True))
    assert all(p.exists() for p in list(before)[2:])
    store.close()
    report = verify(data_dir, identity=[agency])
    assert report.ok, report.render()


def test_pack_that_dies_early_stops_at_the_collapse(tmp_path: Path, agency: Identity) -> None:
    """A worn pack whose capacity collapses at 60 %: the next reading is critical, all sealed."""
    clock = Clock()
    data_dir = tmp_path / "data"
    disk = SimStorage(data_dir, 64 << 20)
    battery = SimBattery(1.0, percent=62, clock=clock)
    battery.die_at(60)
    store = open_store(data_dir, agency, disk)
    recorder = Recorder(store, disk, battery, clock)
    assert recorder.start()
    recorder.run(3600)
    assert recorder.stopped_because == "low_battery_shutdown"
    # 2 % of 1 Wh at 4 W is 18 s; the policy cannot foresee a collapse, it reacts at once.
    assert clock.t == pytest.approx(18, abs=1)
    assert [e.what for e in battery.history][-2:] == ["died", "load"]
    store.close()
    assert_all_sealed_and_verifiable(data_dir, agency, recorder.seq)


@pytest.mark.parametrize("fault", ["enospc-tmpfs", "erofs-sim", "eio-sim"])
def test_write_fault_leaves_nothing_half_written(request: pytest.FixtureRequest,
                                                 tmp_path: Path, agency: Identity,
                                                 fault: str) -> None:
    """A real tmpfs filled to the last byte, or a simulated read-only remount or EIO, under an
    open segment: the failing write raises the classified error, the media file holds only
    whole age chunks, and once the disk recovers the journal seals the segment, verifiable."""
    disk: Storage
    heal: Callable[[], None]
    if fault == "enospc-tmpfs":
        small_fs: Path = request.getfixturevalue("small_fs")
        disk, data_dir, hog = FsStorage(small_fs), small_fs / "data", small_fs / "hog.bin"
        expected: type[Exception] = StorageFull
        heal = hog.unlink
    else:
        data_dir = tmp_path / "data"
        sim = SimStorage(data_dir, 64 << 20)
        disk = sim
        expected = StorageReadOnly if fault == "erofs-sim" else StorageWriteError
        heal = partial(sim.fail_writes, None)
    store = open_store(data_dir, agency, disk)
    clock = Clock()
    recorder = Recorder(store, disk, SimBattery(clock=clock), clock)
    assert recorder.start()
    recorder.run(20)
    segment = recorder.segment
    assert segment is not None
    if fault == "enospc-tmpfs":
        with hog.open("wb") as f, pytest.raises(OSError):
            while True:
                f.write(b"\0" * 65536)
    else:
        sim.fail_writes(errno.EROFS if fault == "erofs-sim" else errno.EIO)
    with pytest.raises(expected):
        for _ in range(40):
            segment.sink.write(b"m" * BYTES_PER_S)
    data = segment.media_path.read_bytes()
    head = header_length(data)
    assert head is not None
    assert (len(data) - head) % ENCRYPTED_CHUNK_SIZE == 0  # whole chunks only
    with pytest.raises(expected):
        store.seal(segment, end=Timestamp(utc(30), 30_000_000), media=MediaInfo())
    assert segment.journal.path.exists()  # left for recovery; nothing was signed half-way
    heal()
    store.close()
    store = open_store(data_dir, agency, disk)
    [recovered] = store.recover()
    assert "recovered" in recovered.manifest["flags"]
    store.close()
    report = verify(data_dir, identity=[agency])
    assert report.ok, report.render()
