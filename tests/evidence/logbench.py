"""A device log built by hand for the verifier's log rules (tests/evidence/test_logcheck_*.py):
framed entries and a checkpoint signed with a real device key, receipts signed with a real
station key -- the way an honest device or an attacker with write access would write them."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path
from typing import Any

from agent.evidence.canonical import canonical_json, parse_canonical
from agent.evidence.checkpoint import Checkpoint, sign_checkpoint
from agent.evidence.inventory import Node
from agent.evidence.keys import DeviceKey
from agent.evidence.log import origin_for
from agent.evidence.logcheck import LogState, check_log
from agent.evidence.merkle import leaf_hash, root_of
from agent.evidence.receipt import Receipt, issue_receipt
from agent.evidence.report import Report
from tests.tools.receipts import RECEIPT_UTC, Station

__all__ = ["DEVICE", "UTC", "LogBench", "canonical_json_entry", "found", "frame", "h", "message"]

DEVICE = "BC-0001"
UTC = "2026-11-27T11:00:00.000000Z"


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def frame(data: bytes) -> bytes:
    return struct.pack(">II", len(data), zlib.crc32(data)) + data


class LogBench:
    """A device log written entry by entry; :meth:`check` runs the verifier's log half."""

    def __init__(self, root: Path, station: Station) -> None:
        self.root = root
        self.key = DeviceKey.generate(root / "keys" / "device.key")
        self.station = station
        self.records: list[bytes] = []
        (root / "log").mkdir(parents=True)

    # -- entries -------------------------------------------------------------------------------
    def add(self, entry: dict[str, Any] | bytes) -> int:
        self.records.append(entry if isinstance(entry, bytes) else canonical_json(entry))
        return len(self.records) - 1

    def segment(self, seq: int, *, manifest: str | None = None) -> int:
        return self.add({"kind": "segment", "device_seq": seq, "seq": seq,
                         "recording_id": "ab" * 8, "path": f"recordings/r/BC_{seq:05d}.mp4.age",
                         "manifest_sha256": manifest or h(f"m{seq}"),
                         "cipher_sha256": h(f"c{seq}")})

    def receipt(self, seq: int, **override: Any) -> Receipt:
        fields: dict[str, Any] = {"station_id": "ST-1", "device_id": DEVICE, "device_seq": seq,
                                  "cipher_sha256": h(f"c{seq}"),
                                  "manifest_sha256": h(f"m{seq}"), "utc": RECEIPT_UTC}
        fields.update(override)
        return issue_receipt(self.station.key, **fields)

    def ack(self, seq: int, signed: Receipt | None = None, /, **override: Any) -> int:
        r = signed or self.receipt(seq)
        entry: dict[str, Any] = {"kind": "event", "type": "acknowledged", "utc": UTC,
                                 "device_seq": seq, "cipher_sha256": h(f"c{seq}"),
                                 "manifest_sha256": h(f"m{seq}"), "receipt": r.to_json(),
                                 "receipt_sha256": r.sha256}
        entry.update(override)
        return self.add(entry)

    def evict(self, seq: int, ack_index: int, **override: Any) -> int:
        ack = canonical_json_entry(self.records[ack_index])
        entry: dict[str, Any] = {"kind": "event", "type": "eviction", "utc": UTC,
                                 "device_seq": seq, "cipher_sha256": h(f"c{seq}"),
                                 "manifest_sha256": h(f"m{seq}"), "ack_index": ack_index,
                                 "receipt_sha256": ack.get("receipt_sha256", h("none")),
                                 "path": f"recordings/r/BC_{seq:05d}.mp4.age"}
        entry.update(override)
        return self.add(entry)

    # -- files ---------------------------------------------------------------------------------
    def checkpoint_text(self, covered: int | None = None, *, origin: str | None = None,
                        key: DeviceKey | None = None,
                        records: list[bytes] | None = None) -> bytes:
        recs = self.records if records is None else records
        size = len(recs) if covered is None else covered
        cp = Checkpoint(origin or origin_for(DEVICE), size,
                        root_of([leaf_hash(r) for r in recs[:size]]))
        return sign_checkpoint(cp, key or self.key)

    def write(self, covered: int | None = None, **kw: Any) -> None:
        (self.root / "log" / "entries.bin").write_bytes(b"".join(map(frame, self.records)))
        (self.root / "log" / "checkpoint").write_bytes(self.checkpoint_text(covered, **kw))

    def node(self, name: str) -> Node:
        path = self.root / "log" / name
        return Node(f"log/{name}", path, "file", path.stat().st_size, "")

    def check(self, *, trusted: bytes | None = None, station: bool = True,
              checkpoint: bool = True, keys: list[bytes] | None = None) -> tuple[Report,
                                                                                 LogState]:
        report = Report(str(self.root))
        st = check_log(self.node("entries.bin"), self.node("checkpoint") if checkpoint else None,
                       keys or [self.key.public_bytes], report, trusted_checkpoint=trusted,
                       station_keys=[self.station.public] if station else [])
        return report, st


def canonical_json_entry(data: bytes) -> dict[str, Any]:
    """A framed record's entry as a dict."""
    return dict(parse_canonical(data))


def found(report: Report, level: str | None = None) -> list[tuple[str, str, str]]:
    """(level, code, where) of every finding, or of those at ``level``."""
    return [(f.level, f.code, f.where) for f in report.findings if level in (None, f.level)]


def message(report: Report, code: str) -> str:
    (msg,) = [f.message for f in report.findings if f.code == code]
    return msg
