"""Bench parts for the offload tests: a device's real evidence store and a real station.

The station is ``bodycam station run`` in a child process on loopback with mutual TLS, made by
:class:`agent.offload.loopback.LoopbackStation` -- the same code ``bodycam run --with-station``
uses. The device's segments are sealed by the real :class:`EvidenceStore` (age-encrypted
random bytes: the uploader never looks inside).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from agent.config import OffloadConfig
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
from agent.offload.loopback import LoopbackStation
from agent.offload.uploader import Offloader
from agent.offload.wiring import build_offloader

REPO = Path(__file__).resolve().parents[2]
DEVICE = "BC-OFF-01"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _utc(second: int) -> str:
    return f"2026-11-30T10:{second // 60:02d}:{second % 60:02d}.000000Z"


class OffloadBench:
    """One device data directory and one loopback station (not started until :meth:`up`)."""

    def __init__(self, root: Path, *, listen: str = "127.0.0.1", prefix: tuple[str, ...] = (),
                 **limits: int) -> None:
        self.root = root
        self.data = root / "device"
        self.key = DeviceKey.generate(self.data / "keys" / "device.key")
        self.agency = Identity.generate()
        self.port = free_port()
        self.host = listen
        self.station = LoopbackStation(root / "station", DEVICE, port=self.port, listen=listen,
                                       prefix=prefix, **limits)
        self.station.prepare(self.key)
        self.receipt_key = self.station.receipt_key()
        self.url = f"https://{listen}:{self.port}"
        self.store: EvidenceStore | None = None
        self.recording_id = uuid.uuid4().hex
        self.next_seq = 0

    def up(self) -> str:
        """Start (or restart) the station on the bench's port."""
        self.url = self.station.start()
        return self.url

    def open_store(self, station_keys: list[str] | None = None) -> EvidenceStore:
        keys = [self.receipt_key] if station_keys is None else station_keys
        self.store = EvidenceStore(self.data, key=self.key, recipients=[self.agency.recipient],
                                   encrypt=True, device_id=DEVICE,
                                   station_keys=[base64.b64decode(k) for k in keys])
        return self.store

    def record(self, segments: int, size: int) -> list[SignedManifest]:
        """Seal ``segments`` segments of ``size`` random bytes each."""
        assert self.store is not None
        out = []
        for _ in range(segments):
            seq = self.next_seq
            self.next_seq += 1
            seg = self.store.open_segment(SegmentInfo(
                recording_id=self.recording_id, seq=seq,
                start=Timestamp(_utc(seq * 10), seq * 10_000_000), clock=ClockInfo("gps", 20),
                officer_id="O-1", unit="U-1", boot_id="b0" * 16))
            data = os.urandom(size)
            for i in range(0, size, 65536):
                seg.sink.write(data[i:i + 65536])
            out.append(self.store.seal(seg, end=Timestamp(_utc(seq * 10 + 10),
                                                          (seq + 1) * 10_000_000),
                                       media=MediaInfo(video={"codec": "h264"}, frames=300,
                                                       duration_us=10_000_000),
                                       gps=GpsSummary()))
        return out

    def config(self, **kw: Any) -> OffloadConfig:
        pki = self.station.pki
        base = dict(enabled=True, url=f"https://{self.host}:{self.port}",
                    cafile=str(pki / "ca.crt"), certfile=str(pki / f"{DEVICE}.crt"),
                    keyfile=str(pki / f"{DEVICE}.key"), retry_s=0.5,
                    station_keys=[self.receipt_key])
        base.update(kw)
        return OffloadConfig(**base)

    def offloader(self, *, chunk_bytes: int = 1 << 20, timeout_s: float = 30.0,
                  **kw: Any) -> Offloader:
        assert self.store is not None
        return build_offloader(self.config(**kw), self.store, device_id=DEVICE,
                               data_dir=self.data, strained=lambda: False,
                               chunk_bytes=chunk_bytes, timeout_s=timeout_s)

    def station_segments(self) -> list[dict[str, Any]]:
        """``bodycam station list --json --check`` on the station's folder."""
        done = subprocess.run([sys.executable, "-m", "agent.cli", "station", "list", "--json",
                               "--check", "--data-dir", str(self.station.root)],
                              capture_output=True, text=True, cwd=REPO, timeout=60,
                              check=False)
        segments: list[dict[str, Any]] = json.loads(done.stdout)["segments"]
        return segments

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        self.station.stop()
