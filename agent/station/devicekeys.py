"""Which Ed25519 keys may sign a device's evidence: the enrolled key and its endorsed successors.

A device rotates its key (``bodycam keys init --rotate``; :mod:`agent.evidence.key_rotation`)
and logs a ``key_rotation`` entry: the old key's fingerprint, the new key and the old key's
endorsement of it (:func:`agent.evidence.keys.rotation_message`). The station registered one
key at enrolment and never trusts a key first seen on an upload; it takes a successor only
from such an entry, presented by the device (``POST /v1/devices/<d>/key-rotation``), whose
endorsement verifies under a key the device already has. Chains follow: A endorses B, then B
endorses C. The enrolled key stays the enrolled key; every key of the chain keeps verifying
what it signed within its span of the log (segments sealed before a rotation still arrive
signed by the old key; past its rotation a retired key signs nothing: :mod:`.keyspans`). A key
that endorsed a successor is retired: it endorses no second one (A to B, later A to C is a fork
written by whoever holds A, refused ``retired-old-key`` with an alarm, like a forged
endorsement).

Two rules, both pure:

* :func:`check_rotation` -- may this presented entry add a key to a device that has ``keys``
  (in chain order: every key but the last has endorsed its successor, so it is retired)?
  Each failure is a :class:`~.refusal.Refused` 422 with its own code;
* :func:`trusted_successors` -- the keys the stored successor rows introduce, each row checked
  again by the same rule against the keys before it, so a row written into the index by hand
  (without an endorsement that verifies) introduces nothing.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.evidence.canonical import canonical_json, parse_canonical
from agent.evidence.keys import fingerprint
from agent.evidence.rotation_trust import ROTATION_TYPE, RotationProblem, judge_rotation

from .refusal import Refused

__all__ = ["MAX_ROTATION_ENTRY_BYTES", "ROTATION_TYPE", "Successor", "check_rotation",
           "followed_keys", "trusted_successors"]

#: A key_rotation entry is ~400 bytes (two fingerprints, a key, a signature, a time).
MAX_ROTATION_ENTRY_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Successor:
    """A key a checked rotation entry introduces, with the entry that proves it."""

    public_key: bytes  # raw Ed25519, 32 bytes
    endorsed_by: str   # fingerprint of the old key that signed the endorsement
    entry: bytes       # the log entry's exact canonical bytes
    known: bool        # the device already had this key (presenting it again changes nothing)

    @property
    def fingerprint(self) -> str:
        """SHA-256 (hex) of the new key."""
        return fingerprint(self.public_key)

    @property
    def public_b64(self) -> str:
        """The new key as base64 (as the entry carries it)."""
        return base64.b64encode(self.public_key).decode()


#: The refusals that are evidence of a key in someone else's hands, not of a device's bug.
_ALARMS = frozenset({"forged-endorsement", "retired-old-key"})


def _refuse(code: str, message: str, *, alarm: bool = False) -> Refused:
    return Refused(422, code, message, alarm=alarm)


def _entry(data: bytes) -> dict[str, Any]:
    if len(data) > MAX_ROTATION_ENTRY_BYTES:
        raise _refuse("bad-rotation", f"the entry is longer than {MAX_ROTATION_ENTRY_BYTES} "
                      "bytes: not a key_rotation entry")
    try:
        doc = parse_canonical(data)
        canonical = canonical_json(doc) == data
    except (ValueError, UnicodeDecodeError, TypeError) as exc:
        raise _refuse("bad-rotation", f"the entry is not canonical JSON ({exc})") from None
    if not canonical:
        raise _refuse("bad-rotation", "the entry is not in canonical form (the log's exact "
                      "bytes are needed)")
    if not isinstance(doc, dict) or doc.get("kind") != "event" or \
            doc.get("type") != ROTATION_TYPE:
        raise _refuse("bad-rotation", "the entry is not a key_rotation event")
    return doc


def check_rotation(data: bytes, keys: Sequence[bytes]) -> Successor:
    """Check a presented ``key_rotation`` entry (its exact log bytes) against the keys the
    device has, by the one rotation rule verify applies too
    (:func:`agent.evidence.rotation_trust.judge_rotation`); the successor it introduces. A new
    key the device already has is answered as ``known``: presenting a rotation twice, or one
    older than the enrolment, changes nothing and is no error. ``keys`` is the device's chain
    (``Enrolment.keys``: the enrolled key, then each successor in the order it joined), so
    every key but the last has endorsed a successor already; a rotation from one of them to a
    key the device does not have is a fork. Every failure is a 422 with the rule's code; a
    forged endorsement and a fork also raise an alarm: each means someone signs with a key
    that is not, or no longer, the device's."""
    doc = _entry(data)
    try:
        judged = judge_rotation(doc, keys, retired=keys[:-1])
    except RotationProblem as problem:
        raise _refuse(problem.code, problem.message,
                      alarm=problem.code in _ALARMS) from None
    return Successor(judged.new_key, judged.old_fingerprint, data, known=judged.known)


def trusted_successors(enrolled: bytes, entries: Sequence[bytes]) -> list[bytes]:
    """The keys stored rotation ``entries`` introduce for a device enrolled with ``enrolled``,
    in the order they join: each entry must pass :func:`check_rotation` against the keys
    before it (in any stored order: a chain is followed until nothing more joins; of two
    successors of one key only the first to join counts, the other is a fork)."""
    keys = [enrolled]
    left = list(entries)
    while left:
        later = []
        for data in left:
            try:
                s = check_rotation(data, keys)
            except Refused as exc:
                if exc.code == "unknown-old-key":
                    later.append(data)  # its old key may join through another entry
                continue
            if not s.known:
                keys.append(s.public_key)
        if len(later) == len(left):
            break
        left = later
    return keys[1:]


@functools.lru_cache(maxsize=1024)
def followed_keys(enrolled: bytes, entries: tuple[bytes, ...]) -> tuple[bytes, ...]:
    """:func:`trusted_successors`, remembered: the index asks on every device request (each
    PATCH), and the answer depends on nothing but these bytes, so the signatures are checked
    once per process and set of rows, not once per request."""
    return tuple(trusted_successors(enrolled, entries))
