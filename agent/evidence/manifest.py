"""Segment manifests: what a segment is, signed by the device key.

The manifest is canonical JSON (no floats) so that its bytes — and therefore its signature
and its hash in the log — are reproducible by any verifier. It is stored beside the media as
``<segment>.manifest.json``::

    {"manifest": {...}, "signature": {"alg": "ed25519", "key": <b64>, "sig": <b64>}}

The recorder fills the typed parts (:class:`SegmentInfo`, :class:`MediaInfo`,
:class:`GpsSummary`, …); :class:`EvidenceStore` adds file hashes, sequence numbers and the
log chaining (``prev_leaf``) and signs.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from hw.errors import VerificationError

from .canonical import canonical_json, check_no_floats, parse_canonical
from .keys import DeviceKey

__all__ = [
    "FORMAT",
    "ClockInfo",
    "ClockSource",
    "GpsSummary",
    "MediaInfo",
    "Position",
    "SegmentInfo",
    "SignedManifest",
    "Timestamp",
    "parse_envelope",
    "sign_manifest",
]

FORMAT = "bodycam-segment/1"


class ClockSource(StrEnum):
    """What vouches for the system clock: the values a manifest's ``clock.source`` may take.

    :class:`agent.clock.discipline.ClockDiscipline` decides which one holds.
    """

    GPS = "gps"
    NTP = "ntp"
    RTC = "rtc"
    NONE = "none"


CLOCK_SOURCES = tuple(s.value for s in ClockSource)


@dataclass(frozen=True, slots=True)
class Timestamp:
    """A UTC instant (ISO-8601, microseconds, ``Z``) paired with CLOCK_MONOTONIC in µs."""

    utc: str
    mono_us: int

    def to_json(self) -> dict[str, Any]:
        """Manifest form."""
        return {"utc": self.utc, "mono_us": self.mono_us}


@dataclass(frozen=True, slots=True)
class ClockInfo:
    """Where UTC came from and how wrong it may be."""

    source: str
    est_error_ms: int | None  # None: nothing bounds the error (an RTC or no source at all)
    trusted: bool | None = None

    def __post_init__(self) -> None:
        if self.source not in CLOCK_SOURCES:
            raise ValueError(f"clock source {self.source!r} not in {CLOCK_SOURCES}")

    def to_json(self) -> dict[str, Any]:
        """Manifest form."""
        out: dict[str, Any] = {"source": self.source, "est_error_ms": self.est_error_ms}
        if self.trusted is not None:
            out["trusted"] = self.trusted
        return out


@dataclass(frozen=True, slots=True)
class Position:
    """A fix: UTC, latitude/longitude in 1e-7 degrees, altitude in mm (or unknown)."""

    utc: str
    lat_e7: int
    lon_e7: int
    alt_mm: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Manifest object form (``gps.start`` / ``gps.end``)."""
        return {"utc": self.utc, "lat_e7": self.lat_e7, "lon_e7": self.lon_e7,
                "alt_mm": self.alt_mm}

    def to_row(self) -> list[Any]:
        """Compact ``gps.track`` row ``[utc, lat_e7, lon_e7, alt_mm]``."""
        return [self.utc, self.lat_e7, self.lon_e7, self.alt_mm]


@dataclass(frozen=True, slots=True)
class GpsSummary:
    """First and last fix of a segment and its (decimated) track."""

    start: Position | None = None
    end: Position | None = None
    track: tuple[Position, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Manifest form."""
        return {"start": self.start.to_json() if self.start else None,
                "end": self.end.to_json() if self.end else None,
                "track": [p.to_row() for p in self.track]}


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """Codec parameters (integers/strings only), frame count and duration."""

    video: Mapping[str, Any] | None = None
    audio: Mapping[str, Any] | None = None
    frames: int | None = None
    duration_us: int | None = None
    container: str = "mp4-frag"

    def to_json(self) -> dict[str, Any]:
        """Manifest form."""
        return {"container": self.container,
                "video": dict(self.video) if self.video is not None else None,
                "audio": dict(self.audio) if self.audio is not None else None,
                "frames": self.frames, "duration_us": self.duration_us}


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What the recorder knows when a segment opens."""

    recording_id: str
    seq: int
    start: Timestamp
    clock: ClockInfo
    officer_id: str | None = None
    unit: str | None = None
    boot_id: str | None = None
    preroll: bool = False
    flags: tuple[str, ...] = field(default=())
    extension: str = "mp4"  # media container: mp4 (video or audio-only), jpg (a still)

    def __post_init__(self) -> None:
        if len(self.recording_id) < 8 or not all(c in "0123456789abcdef"
                                                 for c in self.recording_id):
            raise ValueError(f"recording_id {self.recording_id!r} must be a lower-case hex UUID")
        if self.seq < 0:
            raise ValueError("segment seq must be >= 0")


@dataclass(frozen=True, slots=True)
class SignedManifest:
    """A manifest, its signature block and the exact envelope bytes written to disk."""

    manifest: dict[str, Any]
    signature: dict[str, str]

    @property
    def signed_bytes(self) -> bytes:
        """The canonical manifest bytes the signature covers."""
        return canonical_json(self.manifest)

    @property
    def sha256(self) -> str:
        """SHA-256 of the signed bytes (what the log leaf commits to), hex."""
        return hashlib.sha256(self.signed_bytes).hexdigest()

    def envelope(self) -> bytes:
        """The ``.manifest.json`` file content (canonical JSON + newline)."""
        return canonical_json({"manifest": self.manifest, "signature": self.signature}) + b"\n"

    def verify(self, trusted: Iterable[bytes]) -> bytes:
        """Return the trusted public key that signed this; VerificationError otherwise."""
        if self.signature.get("alg") != "ed25519":
            raise VerificationError(f"unsupported signature algorithm {self.signature.get('alg')!r}")
        try:
            key = base64.b64decode(self.signature["key"], validate=True)
            sig = base64.b64decode(self.signature["sig"], validate=True)
        except (KeyError, ValueError):
            raise VerificationError("signature block is malformed") from None
        if key not in set(trusted):
            raise VerificationError("manifest signed by a key that is not trusted for this device")
        try:
            Ed25519PublicKey.from_public_bytes(key).verify(sig, self.signed_bytes)
        except (InvalidSignature, ValueError):
            raise VerificationError("manifest signature does not verify") from None
        return key


def sign_manifest(manifest: Mapping[str, Any], key: DeviceKey) -> SignedManifest:
    """Sign the canonical form of ``manifest`` (TypeError if it holds a float)."""
    body = dict(manifest)
    check_no_floats(body, "manifest")
    sig = key.sign(canonical_json(body))
    return SignedManifest(body, {"alg": "ed25519", "key": key.public_b64,
                                 "sig": base64.b64encode(sig).decode()})


def parse_envelope(data: bytes) -> SignedManifest:
    """Parse a ``.manifest.json`` file; VerificationError if it is not a manifest envelope."""
    try:
        doc = parse_canonical(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VerificationError(f"manifest file is not valid JSON ({exc})") from None
    if (not isinstance(doc, dict) or not isinstance(doc.get("manifest"), dict)
            or not isinstance(doc.get("signature"), dict)):
        raise VerificationError("manifest file lacks manifest/signature objects")
    if doc["manifest"].get("format") != FORMAT:
        raise VerificationError(f"manifest format is not {FORMAT}")
    return SignedManifest(doc["manifest"], doc["signature"])
