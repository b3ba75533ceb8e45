"""Following the device key's rotations: trust passes from a key to the successor it endorsed,
and to no other -- the one rule ``bodycam verify`` and the collection station both apply.

A ``key_rotation`` log entry names its old key's fingerprint and carries the new key and the
old key's endorsement of it (:func:`agent.evidence.keys.rotation_message`).
:func:`judge_rotation` decides one entry against the keys trusted so far; every way it can be
wrong has its own code (:class:`RotationProblem`), which the station answers with and verify
reports as a finding. The entries are untrusted input: every field is checked before use.

A rotation also *retires* its old key: a key is rotated because it may be compromised, so it
endorses one successor and no more. A second rotation from a retired key (A to B, later A to
C) is a fork whoever holds the retired key wrote: ``retired-old-key``, refused like a forged
endorsement.

:func:`follow_windows` is the verifier's walk: from the keys it trusts (the device key
registered with the fleet, given with ``--pubkey``, or -- saying so -- the folder's own), in log
order, each endorsed rotation from a key in force makes its new key trusted from the next
entry on and ends the old key's window (:mod:`agent.evidence.key_windows`); a forged one or a
fork is a failure; one without an endorsement (written by a device from before endorsements)
or from a key nobody here trusts introduces nothing, and says so. The caller passes only the
entries a verified checkpoint covers: an entry past it is what anyone can append.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from .key_windows import KeyWindows
from .keys import endorsement_valid, fingerprint
from .report import Level

__all__ = ["ROTATION_TYPE", "Endorsed", "RotationProblem", "follow_rotations", "follow_windows",
           "judge_rotation"]

ROTATION_TYPE: Final = "key_rotation"


class RotationProblem(ValueError):
    """Why a rotation entry introduces no key: ``code`` is one of ``bad-rotation`` (malformed),
    ``unknown-old-key``, ``retired-old-key`` (a fork), ``unendorsed-rotation``,
    ``forged-endorsement``."""

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


def judge_rotation(entry: Mapping[str, Any], keys: Sequence[bytes],
                   retired: Sequence[bytes] = ()) -> Endorsed:
    """Check one ``key_rotation`` entry against the trusted ``keys``, in this order: its form,
    the new key against its fingerprint, a new key already trusted (known: presenting twice, or
    a rotation older than the trust, is no error), an old key in ``retired`` (it endorsed its
    one successor already: a fork), the old key among ``keys``, the endorsement.
    RotationProblem names the first thing wrong."""
    new = _raw(entry.get("new_key"), 32, "new_key")
    new_fp, old_fp = entry.get("new_fingerprint"), entry.get("old_fingerprint")
    if not isinstance(old_fp, str) or len(old_fp) != 64:
        raise RotationProblem("bad-rotation", "old_fingerprint is not a SHA-256 fingerprint")
    if new_fp != fingerprint(new):
        raise RotationProblem("bad-rotation", "new_fingerprint is not the SHA-256 of new_key")
    if new in keys:
        return Endorsed(new, old_fp, known=True)
    if any(fingerprint(k) == old_fp for k in retired):
        raise RotationProblem("retired-old-key", f"the rotation to key {new_fp[:16]} is from "
                              f"key {old_fp[:16]}, which already endorsed its successor and is "
                              "retired: a second successor is a fork, written by whoever holds "
                              "the retired key")
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


# How verify reports each problem: a malformed or forged rotation, or a fork, fails the folder;
# one it cannot judge (no endorsement, an old key not trusted here) only introduces nothing.
_FINDING: Final[dict[str, tuple[Level, str]]] = {
    "bad-rotation": ("fail", "key_rotation_malformed"),
    "forged-endorsement": ("fail", "key_rotation_endorsement"),
    "retired-old-key": ("fail", "key_rotation_fork"),
    "unknown-old-key": ("warn", "key_rotation_untrusted"),
    "unendorsed-rotation": ("warn", "key_rotation_unendorsed"),
}


class Findings(Protocol):
    """Where findings go: the verifier's report or a court bundle's."""

    def add(self, level: Level, code: str, where: str, message: str) -> None: ...


def follow_rotations(entries: Sequence[Mapping[str, Any]], keys: Sequence[bytes],
                     report: Findings) -> list[bytes]:
    """The keys the rotations in ``entries`` introduce, given ``keys`` trusted at the start
    (forks and forgeries introduce nothing and are findings)."""
    start = KeyWindows.starting(keys).trusted()
    return [k for k in follow_windows(entries, keys, report).trusted() if k not in start]


def follow_windows(entries: Sequence[Mapping[str, Any]], keys: Sequence[bytes],
                   report: Findings) -> KeyWindows:
    """Every trusted key's validity window by log position (``entries``: the log from entry 0,
    as far as a verified checkpoint covers it), given ``keys`` trusted from entry 0."""
    windows = KeyWindows.starting(keys)
    for i, entry in enumerate(entries):
        if entry.get("type") == ROTATION_TYPE:
            _follow(entry, i, windows, report)
    return windows


def _follow(entry: Mapping[str, Any], i: int, windows: KeyWindows, report: Findings) -> None:
    where = f"log entry {i}"
    force = windows.in_force()
    try:
        judged = judge_rotation(entry, force, windows.retired())
    except RotationProblem as problem:
        level, code = _FINDING[problem.code]
        if problem.code == "unendorsed-rotation":
            # The device says it stopped signing with the old key here: hold it to that, even
            # though the successor it names cannot be trusted without an endorsement.
            old = windows.by_fingerprint(entry["old_fingerprint"])
            if old is not None:
                windows.retire(old, i)
        report.add(level, code, where, problem.message)
        return
    fp, old_fp = fingerprint(judged.new_key)[:16], judged.old_fingerprint[:16]
    old = windows.by_fingerprint(judged.old_fingerprint)
    if judged.known:
        if old is not None and old in force and old != judged.new_key:
            windows.retire(old, i)  # both keys trusted from outside: the log says when
            windows.introduce(judged.new_key, i)
            report.add("ok", "key_rotation", where, f"to key {fp}, already trusted; key "
                       f"{old_fp} signs nothing after this entry")
        else:
            report.add("ok", "key_rotation", where, f"to key {fp}, already trusted")
        return
    assert old is not None  # judge_rotation found it among the keys in force
    windows.retire(old, i)
    windows.introduce(judged.new_key, i)
    report.add("ok", "key_rotation", where, f"key {fp} endorsed by trusted key {old_fp}, "
               "which signs nothing after this entry")


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
