"""A storage fault under an open segment leaves nothing half written, with the real evidence
store: a real tmpfs filled to the last byte, a simulated read-only remount or EIO. The failing
write raises the classified error, the media file holds only whole age chunks, the seal is
refused with the journal kept, and once the disk recovers the journal seals the segment,
verifiable with the agency identity.

(How the recorder reacts to a full disk or a dying battery is the product's own supervisor's
business: tests/storage/test_supervised_scenarios.py.)
"""

from __future__ import annotations

import errno
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest

from agent.evidence.age import ENCRYPTED_CHUNK_SIZE, Identity, header_length
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import ClockInfo, MediaInfo, SegmentInfo, Timestamp
from agent.evidence.store import EvidenceStore
from agent.evidence.verify import verify
from hw.errors import StorageFull, StorageReadOnly, StorageWriteError
from hw.storage import Storage
from hw.storage_fs import FsStorage
from hw.storage_sim import SimStorage

pytestmark = pytest.mark.timeout(120)

BYTES_PER_S = 8_000


def utc(t: float) -> str:
    minutes, seconds = divmod(int(t), 60)
    return f"2026-11-27T10:{minutes:02d}:{seconds:02d}.000000Z"


@pytest.fixture
def agency() -> Identity:
    return Identity.generate()


def open_store(data_dir: Path, agency: Identity, disk: Storage) -> EvidenceStore:
    key_path = data_dir / "keys" / "device.key"
    key = DeviceKey.load(key_path) if key_path.exists() else DeviceKey.generate(key_path)
    return EvidenceStore(data_dir, key=key, recipients=[agency.recipient], encrypt=True,
                         device_id="BC-0001", open_append=disk.open_append)


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
    segment = store.open_segment(SegmentInfo(uuid.uuid4().hex, 0, Timestamp(utc(0), 0),
                                             ClockInfo("gps", 20), officer_id="O-17"))
    for second in range(20):  # twenty seconds of media are in the segment
        segment.sink.write(bytes([second]) * BYTES_PER_S)
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
