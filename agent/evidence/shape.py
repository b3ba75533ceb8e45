"""Shape checks: is a parsed manifest or log entry the kind of object we write?

A signature proves who wrote a document, not that its fields have the types the verifier
will use: a device key that leaked (or a bug) can sign ``"seq": "x"`` or a file name of
``../../etc/passwd``. Every manifest and log entry passes through these checks before any of
its fields is used, and a document that does not fit is a named finding, never an exception
deep inside the verifier.

Each function returns ``None`` for a good document, else one sentence saying what is wrong.
Extra keys are allowed (a newer device may add fields; they are covered by the signature).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["MEDIA_NAME", "entry_problem", "is_hex64", "manifest_problem"]

MEDIA_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.(?:mp4|jpg)(?:\.age)?$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_RID = re.compile(r"^[0-9a-f]{8,64}$")
_REL_MEDIA = re.compile(r"^recordings/[A-Za-z0-9][A-Za-z0-9._-]{0,200}/[A-Za-z0-9][A-Za-z0-9._-]"
                        r"{0,200}\.(?:mp4|jpg)(?:\.age)?$")

_Check = Callable[[Any], bool]


def is_hex64(value: Any) -> bool:
    """A lower-case hex SHA-256."""
    return isinstance(value, str) and bool(_HEX64.match(value))


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _opt(check: _Check) -> _Check:
    return lambda v: v is None or check(v)


def _str(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 1024


def _fields(doc: Any, spec: Mapping[str, _Check], what: str) -> str | None:
    if not isinstance(doc, dict):
        return f"{what} is not an object"
    for name, check in spec.items():
        if name not in doc:
            return f"{what} lacks '{name}'"
        if not check(doc[name]):
            return f"{what} field '{name}' has the wrong type or value ({str(doc[name])[:40]!r})"
    return None


def _stamp(nullable: bool) -> _Check:
    def check(v: Any) -> bool:
        spec: dict[str, _Check] = ({"utc": _opt(_str), "mono_us": _opt(_int)} if nullable
                                   else {"utc": _str, "mono_us": _int})
        return _fields(v, spec, "time") is None
    return check


_FILE: dict[str, _Check] = {
    "name": lambda v: isinstance(v, str) and bool(MEDIA_NAME.match(v)),
    "encrypted": lambda v: isinstance(v, bool),
    "recipients": lambda v: isinstance(v, list) and all(_str(r) for r in v),
    "plain_sha256": _opt(is_hex64),
    "plain_bytes": _opt(_int),
    "cipher_sha256": is_hex64,
    "cipher_bytes": _int,
}

_MANIFEST: dict[str, _Check] = {
    "device_id": _str,
    "recording_id": lambda v: isinstance(v, str) and bool(_RID.match(v)),
    "seq": _int,
    "device_seq": _int,
    "officer_id": _opt(_str),
    "start": _stamp(nullable=False),
    "end": _stamp(nullable=True),
    "clock": lambda v: isinstance(v, dict),
    "gps": lambda v: isinstance(v, dict),
    "media": lambda v: isinstance(v, dict),
    "matter": lambda v: v is None or isinstance(v, dict),
    "prev_leaf": _opt(is_hex64),
    "flags": lambda v: isinstance(v, list) and all(_str(f) for f in v),
    "bookmarks": lambda v: isinstance(v, list) and all(isinstance(b, dict) for b in v),
    "file": lambda v: isinstance(v, dict),
}


def manifest_problem(manifest: Any) -> str | None:
    """None if ``manifest`` has every field the verifier relies on, with the right types."""
    return _fields(manifest, _MANIFEST, "manifest") or _fields(manifest["file"], _FILE,
                                                                "manifest file block")


_SEGMENT: dict[str, _Check] = {
    "device_seq": _int, "seq": _int,
    "recording_id": lambda v: isinstance(v, str) and bool(_RID.match(v)),
    "path": lambda v: isinstance(v, str) and bool(_REL_MEDIA.match(v)),
    "manifest_sha256": is_hex64, "cipher_sha256": is_hex64,
}
_ACKNOWLEDGED: dict[str, _Check] = {
    "device_seq": _int, "manifest_sha256": is_hex64, "cipher_sha256": is_hex64,
    "receipt": lambda v: isinstance(v, dict), "receipt_sha256": is_hex64,
}
_EVICTION: dict[str, _Check] = {
    "device_seq": _int, "manifest_sha256": is_hex64, "cipher_sha256": is_hex64,
    "ack_index": _int, "receipt_sha256": is_hex64,
}
_EVENTS: dict[str, dict[str, _Check]] = {"acknowledged": _ACKNOWLEDGED, "eviction": _EVICTION}


def entry_problem(entry: Any) -> str | None:
    """None if a log entry is well formed for its kind (events we do not check by type pass)."""
    if not isinstance(entry, dict):
        return "log entry is not an object"
    kind = entry.get("kind")
    if kind == "segment":
        return _fields(entry, _SEGMENT, "segment entry")
    if kind != "event" or not _str(entry.get("type")):
        return f"log entry kind {str(kind)[:20]!r} is neither a segment nor an event"
    spec = _EVENTS.get(entry["type"])
    return _fields(entry, spec, f"{entry['type']} entry") if spec else None
