"""Following the device key's rotations: trust passes from a key to the successor it endorsed,
and to no other -- the one rule ``bodycam verify`` and the collection station both apply.

A ``key_rotation`` log entry names its old key's fingerprint and carries the new key and the
old key's endorsement of it (:func:`agent.evidence.keys.rotation_message`).
:func:`judge_rotation` decides one entry against the keys trusted so far; every way it can be
wrong has its own code (:class:`RotationProblem`), which the station answers with and verify
reports as a finding. The entries are untrusted input: every field is checked before use.

:func:`follow_rotations` is the verifier's walk: from the keys it trusts (the device key
registered with the fleet, given with ``--pubkey``, or -- saying so -- the folder's own), in log
order, each endorsed rotation from a trusted key makes its new key trusted; a forged one is a
failure; one without an endorsement (written by a device from before endorsements) or from a
key nobody here trusts introduces nothing, and says so.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from .keys import endorsement_valid, fingerprint
from .report import Level

__all__ = ["ROTATION_TYPE", "Endorsed", "RotationProblem", "follow_rotations", "judge_rotation"]

ROTATION_TYPE: Final = "key_rotation"


class RotationProblem(ValueError):
    """Why a rotation entry introduces no key: ``code`` is one of ``bad-rotation`` (malformed),
    ``unknown-old-key``, ``unendorsed-rotation``, ``forged-endorsement``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class Endorsed:
    """What a sound rotation entry says: its new key, the old key that endorsed it, and whether
    that new key was already among the trusted ones (nothing to add)."""

    new_key: bytes  # raw Ed25519, 32 bytes
    old_fingerprint: str
    known: bool


def judge_rotation(entry: Mapping[str, Any], keys: Sequence[bytes]) -> Endorsed:
    """Check one ``key_rotation`` entry against the trusted ``keys``, in this order: its form,
    the new key against its fingerprint, a new key already trusted (known: presenting twice, or
    a rotation older than the trust, is no error), the old key among ``keys``, the endorsement.
    RotationProblem names the first thing wrong."""
    new = _raw(entry.get("new_key"), 32, "new_key")
    new_fp, old_fp = entry.get("new_fingerprint"), entry.get("old_fingerprint")
    if not isinstance(old_fp, str) or len(old_fp) != 64:
        raise RotationProblem("bad-rotation", "old_fingerprint is not a SHA-256 fingerprint")
    if new_fp != fingerprint(new):
        raise RotationProblem("bad-rotation", "new_fingerprint is not the SHA-256 of new_key")
    if new in keys:
        return Endorsed(new, old_fp, known=True)
    old = next((k for k in keys if fingerprint(k) == old_fp), None)
    if old is None:
        raise RotationProblem("unknown-old-key", f"the rotation to key {new_fp[:16]} is from "
                              f"key {old_fp[:16]}, which is not trusted here")
    if "endorsement" not in entry:
        raise RotationProblem("unendorsed-rotation", f"key {new_fp[:16]} is announced without "
                              "the old key's endorsement (a device from before endorsements)")
    signature = _raw(entry.get("endorsement"), 64, "endorsement")
    if not endorsement_valid(old, new, signature):
        raise RotationProblem("forged-endorsement", f"the endorsement of key {new_fp[:16]} does "
                              f"not verify under key {old_fp[:16]}: a forged rotation")
    return Endorsed(new, old_fp, known=False)


# How verify reports each problem: a malformed or forged rotation fails the folder; one it
# cannot judge (no endorsement, an old key not trusted here) only introduces nothing.
_FINDING: Final[dict[str, tuple[Level, str]]] = {
    "bad-rotation": ("fail", "key_rotation_malformed"),
    "forged-endorsement": ("fail", "key_rotation_endorsement"),
    "unknown-old-key": ("warn", "key_rotation_untrusted"),
    "unendorsed-rotation": ("warn", "key_rotation_unendorsed"),
}


class Findings(Protocol):
    """Where findings go: the verifier's report or a court bundle's."""

    def add(self, level: Level, code: str, where: str, message: str) -> None: ...


def follow_rotations(entries: Sequence[Mapping[str, Any]], keys: Sequence[bytes],
                     report: Findings) -> list[bytes]:
    """The keys the log's rotations introduce, given ``keys`` trusted at the start."""
    trusted = list(keys)
    introduced: list[bytes] = []
    for i, entry in enumerate(entries):
        if entry.get("type") != ROTATION_TYPE:
            continue
        where = f"log entry {i}"
        try:
            judged = judge_rotation(entry, trusted)
        except RotationProblem as problem:
            level, code = _FINDING[problem.code]
            report.add(level, code, where, problem.message)
            continue
        fp = fingerprint(judged.new_key)[:16]
        if judged.known:
            report.add("ok", "key_rotation", where, f"to key {fp}, already trusted")
            continue
        trusted.append(judged.new_key)
        introduced.append(judged.new_key)
        report.add("ok", "key_rotation", where,
                   f"key {fp} endorsed by trusted key {judged.old_fingerprint[:16]}")
    return introduced


def _raw(value: Any, size: int, what: str) -> bytes:
    if not isinstance(value, str) or len(value) > 2 * size:
        raise RotationProblem("bad-rotation", f"{what} is not base64 of {size} bytes")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RotationProblem("bad-rotation", f"{what} is not base64") from None
    if len(raw) != size:
        raise RotationProblem("bad-rotation", f"{what} is {len(raw)} bytes, not {size}")
    return raw
