"""Helpers for the evidence tests (imported by conftest and the tests)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.evidence.age import Identity, Recipient
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


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} not installed")
    return path


@dataclass(frozen=True)
class AgencyKey:
    path: Path
    identity: Identity
    recipient: Recipient


def open_store(data_dir: Path, agency: AgencyKey, *, device_id: str = "BC-0001",
               encrypt: bool = True, **kw: object) -> EvidenceStore:
    key = DeviceKey.load(data_dir / "keys" / "device.key")
    return EvidenceStore(data_dir, key=key, recipients=[agency.recipient], encrypt=encrypt,
                         device_id=device_id, **kw)  # type: ignore[arg-type]


def utc(second: int, micro: int = 0) -> str:
    minutes, sec = divmod(second, 60)
    return f"2026-11-27T10:{minutes:02d}:{sec:02d}.{micro:06d}Z"


def segment_info(recording_id: str, seq: int, *, seconds: int = 10) -> SegmentInfo:
    return SegmentInfo(recording_id=recording_id, seq=seq,
                       start=Timestamp(utc(seq * seconds), seq * seconds * 1_000_000),
                       clock=ClockInfo("gps", 20), officer_id="O-17", unit="U-3",
                       boot_id="b0" * 16)


def write_recording(store: EvidenceStore, *, segments: int = 3, size: int = 70_000,
                    recording_id: str | None = None, seconds: int = 10,
                    payload: Callable[[int], bytes] | None = None) -> list[SignedManifest]:
    """Seal ``segments`` consecutive segments of one recording with random media bytes."""
    rid = recording_id or uuid.uuid4().hex
    out = []
    for seq in range(segments):
        seg = store.open_segment(segment_info(rid, seq, seconds=seconds))
        data = payload(seq) if payload else os.urandom(size)
        for i in range(0, len(data), 4096):
            seg.sink.write(data[i : i + 4096])
        end_s = (seq + 1) * seconds
        track = (Position(utc(seq * seconds), 399_041_000 + seq, 1_164_075_000, 43_000),
                 Position(utc(end_s), 399_041_500 + seq, 1_164_075_500, None))
        out.append(store.seal(seg, end=Timestamp(utc(end_s), end_s * 1_000_000),
                              media=MediaInfo(video={"codec": "h264", "width": 1920},
                                              frames=seconds * 30,
                                              duration_us=seconds * 1_000_000),
                              gps=GpsSummary(track[0], track[1], track)))
    return out
