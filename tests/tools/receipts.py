"""A collection station's side of acknowledgement, for tests and benches.

Keys are generated at run time in a temporary directory (never committed); receipts are signed
with :func:`agent.evidence.receipt.issue_receipt`, exactly as a station signs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import SignedManifest
from agent.evidence.receipt import Receipt, issue_receipt

__all__ = ["RECEIPT_UTC", "Station", "make_station"]

RECEIPT_UTC = "2026-11-27T11:00:00.000000Z"


class Station:
    """A station key and its public half (what a device's ``[offload] station_keys`` holds)."""

    def __init__(self, key: DeviceKey, station_id: str = "ST-1") -> None:
        self.key = key
        self.station_id = station_id

    @property
    def public(self) -> bytes:
        """Raw Ed25519 public key (pass in ``station_keys=[...]``)."""
        return self.key.public_bytes

    @property
    def public_b64(self) -> str:
        """Base64 public key (the form ``[offload] station_keys`` takes)."""
        return self.key.public_b64

    def receipt(self, signed: SignedManifest, **override: Any) -> Receipt:
        """A receipt naming exactly the segment of ``signed``; ``override`` falsifies a field."""
        m = signed.manifest
        fields: dict[str, Any] = {
            "station_id": self.station_id, "device_id": m["device_id"],
            "device_seq": m["device_seq"], "cipher_sha256": m["file"]["cipher_sha256"],
            "manifest_sha256": signed.sha256, "utc": RECEIPT_UTC}
        fields.update(override)
        return issue_receipt(self.key, **fields)


def make_station(directory: Path, station_id: str = "ST-1") -> Station:
    """A fresh station key in ``directory`` (a pytest tmp dir)."""
    return Station(DeviceKey.generate(Path(directory) / f"{station_id}.key"), station_id)
