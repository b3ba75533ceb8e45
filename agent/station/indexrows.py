"""The rows the station index hands out: immutable values, safe to pass between threads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ABSENT_CREDENTIAL", "CheckpointRow", "CredentialRow", "KeptConsistency",
           "KeptInclusion", "SegmentRow", "UploadRow", "credential_row", "segment_row"]


@dataclass(frozen=True, slots=True)
class UploadRow:
    """An upload as the index knows it; its bytes are in the store's ``.incoming``."""

    upload_id: str
    device_id: str
    length: int | None
    metadata: str
    state: str  # open | stored | expired | refused
    created: float
    updated: float


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """A stored segment and the receipt every request for it gets."""

    device_id: str
    device_seq: int
    recording_id: str
    seq: int
    path: str
    cipher_sha256: str
    manifest_sha256: str
    cipher_bytes: int
    manifest_bytes: int
    leaf_index: int
    checkpoint_size: int
    stored_utc: str
    receipt: str  # the receipt envelope, canonical JSON


@dataclass(frozen=True, slots=True)
class CredentialRow:
    """The C2PA state of a stored segment's device credential (no row: ``absent``)."""

    device_id: str
    device_seq: int
    state: str  # valid | invalid
    reason: str
    sha256: str  # of the sidecar's bytes ("" when none were read: too large)
    bytes: int
    utc: str

    def to_json(self) -> dict[str, Any]:
        """What receipts and listings show."""
        return {"state": self.state, "reason": self.reason, "sha256": self.sha256 or None,
                "bytes": self.bytes, "utc": self.utc}


ABSENT_CREDENTIAL: dict[str, Any] = {"state": "absent", "reason": "the device sent no "
                                     "Content Credential", "sha256": None, "bytes": 0,
                                     "utc": None}


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """The newest checkpoint of a device's log the station holds (its witness state)."""

    size: int
    root: str  # base64
    note: str


@dataclass(frozen=True, slots=True)
class KeptInclusion:
    """The inclusion proof (RFC 9162 audit path) a device gave when it finalised a segment."""

    device_id: str
    device_seq: int
    entry: str  # the log entry's exact text (canonical JSON)
    leaf_index: int
    hashes: tuple[str, ...]  # base64
    checkpoint: str  # the signed note the path leads to


@dataclass(frozen=True, slots=True)
class KeptConsistency:
    """A verified consistency proof from one signed checkpoint of a device to a larger one."""

    device_id: str
    old_size: int
    old_root: str  # base64
    new_size: int
    new_root: str
    hashes: tuple[str, ...]
    old_note: str
    new_note: str


def credential_row(r: tuple[Any, ...]) -> CredentialRow:
    """A ``credentials`` row as read back from either database."""
    return CredentialRow(r[0], int(r[1]), r[2], r[3], r[4], int(r[5]), r[6])


def segment_row(r: tuple[Any, ...]) -> SegmentRow:
    """A ``segments`` row (columns in ``_SEGMENT_COLUMNS`` order) as read back."""
    return SegmentRow(r[0], int(r[1]), r[2], int(r[3]), r[4], r[5], r[6], int(r[7]), int(r[8]),
                      int(r[9]), int(r[10]), r[11], r[12])
