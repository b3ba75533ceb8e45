"""Seal real media through the evidence store with Content Credentials, and decrypt it with
the stock age tool, as an agency clerk would."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from agent.c2pa import ContentCredentials, SigningIdentity
from agent.evidence.age import Recipient
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import (
    ClockInfo,
    GpsSummary,
    MediaInfo,
    Position,
    SegmentInfo,
    SignedManifest,
    Timestamp,
)
from agent.evidence.store import EvidenceStore


@dataclass
class Bench:
    """One device's data directory, its agency and its C2PA trust anchor."""

    data: Path
    agency_key: Path
    recipient: Recipient
    identity: SigningIdentity
    anchor: bytes
    sealed: list[tuple[Path, SignedManifest]] = field(default_factory=list)

    def store(self, **kw: object) -> EvidenceStore:
        return EvidenceStore(self.data, key=DeviceKey.load(self.data / "keys" / "device.key"),
                             recipients=[self.recipient], encrypt=True, device_id="BC-0001",
                             after_seal=ContentCredentials(self.identity),
                             **kw)  # type: ignore[arg-type]

    def seal(self, store: EvidenceStore, media: bytes, *, seq: int = 0,
             fix: bool = True) -> tuple[Path, SignedManifest]:
        """Write ``media`` through the sink in 4 KiB pieces, as the muxer does, and seal it."""
        info = SegmentInfo(recording_id=uuid.uuid4().hex, seq=seq,
                           start=Timestamp("2026-11-27T10:00:00.000000Z", 1_000_000),
                           clock=ClockInfo("gps", 20), officer_id="O-17", unit="U-3",
                           boot_id="b0" * 16)
        seg = store.open_segment(info)
        for i in range(0, len(media), 4096):
            seg.sink.write(media[i:i + 4096])
        where = Position("2026-11-27T10:00:00.000000Z", 524_123_456, 133_987_654, 41_000)
        signed = store.seal(seg, end=Timestamp("2026-11-27T10:00:02.000000Z", 3_000_000),
                            media=MediaInfo(video={"codec": "h264", "width": 160},
                                            frames=30, duration_us=2_000_000),
                            gps=GpsSummary(where, where, (where,)) if fix else None,
                            matter={"id": "M-2026-117", "kind": "traffic stop"})
        self.sealed.append((seg.media_path, signed))
        return seg.media_path, signed

    def decrypt(self, media: Path, out_dir: Path) -> Path:
        """``age -d`` the segment to ``out_dir/<stem>.mp4`` beside a copy of its credential."""
        out_dir.mkdir(parents=True, exist_ok=True)
        plain = out_dir / media.name.removesuffix(".age")
        subprocess.run(["age", "-d", "-i", str(self.agency_key), "-o", str(plain), str(media)],
                       check=True, capture_output=True, timeout=60)
        return plain
