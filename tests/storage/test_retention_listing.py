"""What the agent offers the eviction planner (agent/storage/reclaim.py ``sealed_segments``): every
sealed segment whose media is still on disk, oldest first, each with whether a station receipt
for it is logged -- and neither a damaged manifest nor an already evicted segment hides any
other segment from the planner (a disk that cannot be cleared stops the recording).

Real evidence store, real station receipts; instant.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from agent.evidence.age import Identity
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import (
    ClockInfo,
    GpsSummary,
    MediaInfo,
    SegmentInfo,
    SignedManifest,
    Timestamp,
)
from agent.evidence.store import EvidenceStore
from agent.storage.reclaim import sealed_segments
from tests.tools.receipts import make_station

SEGMENTS = 12
ORIGIN = {"via": "mqtt", "command_id": "ack-1", "issuer": "station:ST-1"}


def _utc(second: int) -> str:
    return f"2026-11-30T10:{second // 60:02d}:{second % 60:02d}.000000Z"


def record(store: EvidenceStore, n: int) -> list[SignedManifest]:
    """Seal ``n`` small segments of one recording (sizes differ: 1000 + 10 * seq bytes)."""
    rid = uuid.uuid4().hex
    out = []
    for seq in range(n):
        seg = store.open_segment(SegmentInfo(
            recording_id=rid, seq=seq, start=Timestamp(_utc(seq * 2), seq * 2_000_000),
            clock=ClockInfo("gps", 20), officer_id="O-1", unit="U-1", boot_id="b0" * 16))
        seg.sink.write(os.urandom(1000 + 10 * seq))
        out.append(store.seal(seg, end=Timestamp(_utc(seq * 2 + 2), (seq + 1) * 2_000_000),
                              media=MediaInfo(video={"codec": "h264"}, frames=60,
                                              duration_us=2_000_000),
                              gps=GpsSummary()))
    return out


def test_listing_skips_evicted_and_damaged_entries_and_hides_nothing(tmp_path: Path) -> None:
    """Twelve segments, eight receipted, four of those evicted, and damaged manifests beside
    them (junk, no manifest member, a folder by that name): the listing is exactly the eight
    segments still on disk, oldest first, sizes and receipt flags right."""
    data = tmp_path / "data"
    key = DeviceKey.generate(data / "keys" / "device.key")
    station = make_station(tmp_path / "station")
    store = EvidenceStore(data, key=key, recipients=[Identity.generate().recipient],
                          encrypt=True, device_id="BC-0001", station_keys=[station.public])
    try:
        signed = record(store, SEGMENTS)
        folder = next((data / "recordings").iterdir())
        media = {s.manifest["device_seq"]: folder / s.manifest["file"]["name"] for s in signed}
        for s in signed[:8]:
            store.accept_receipt(station.receipt(s), origin=ORIGIN)
        for seq in (0, 2, 4, 6):
            store.evict(media[seq])
        for i in range(6):  # damaged entries spread through the folder's listing order
            (folder / f"damaged-{i}.manifest.json").write_bytes(b"\xff not json")
            (folder / f"partial-{i}.manifest.json").write_bytes(b'{"signature": {}}')
            (folder / f"folder-{i}.manifest.json").mkdir()

        listed = sealed_segments(data, store)
    finally:
        store.close()

    kept = [1, 3, 5, 7, 8, 9, 10, 11]
    assert [s.path for s in listed] == [media[seq] for seq in kept]
    assert [s.acknowledged for s in listed] == [True] * 4 + [False] * 4
    assert [s.size_bytes for s in listed] == [media[seq].stat().st_size for seq in kept]
    assert all(s.sealed_at > 0 for s in listed)
