"""Following the device key's rotations through the log: trust passes from a key to the
successor it endorsed, and to no other.

A verifier starts from the keys it trusts -- the device key registered with the fleet, given
with ``--pubkey``, or (saying so) the folder's own. Each ``key_rotation`` entry names its old
key's fingerprint and carries the new key and the old key's endorsement of it
(:func:`agent.evidence.keys.rotation_message`). In log order: an endorsement that verifies
under a trusted old key makes the new key trusted; one that does not is a failure (a forged
rotation); a rotation without an endorsement (written before endorsements existed) or from a
key nobody trusts introduces nothing, and says so. The entries are untrusted input: every
field is checked before use.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from .keys import endorsement_valid, fingerprint
from .report import Report

__all__ = ["follow_rotations"]


def follow_rotations(entries: Sequence[dict[str, Any]], keys: Sequence[bytes],
                     report: Report) -> list[bytes]:
    """The keys the log's rotations introduce, given ``keys`` trusted at the start."""
    trusted = list(keys)
    introduced: list[bytes] = []
    for i, entry in enumerate(entries):
        if entry.get("type") != "key_rotation":
            continue
        where = f"log entry {i}"
        new = _raw(entry.get("new_key"), 32)
        old_fp = entry.get("old_fingerprint")
        if new is None or not isinstance(old_fp, str):
            report.add("fail", "key_rotation_malformed", where,
                       "a key rotation without a 32-byte new_key and an old_fingerprint")
            continue
        if new in trusted:
            report.add("ok", "key_rotation", where, f"to key {fingerprint(new)[:16]}, already trusted")
            continue
        old = next((k for k in trusted if fingerprint(k) == old_fp), None)
        if "endorsement" not in entry:
            report.add("warn", "key_rotation_unendorsed", where,
                       f"key {fingerprint(new)[:16]} is announced without the old key's "
                       "endorsement (an older device); only --pubkey or the folder can vouch for it")
            continue
        signature = _raw(entry.get("endorsement"), 64)
        if old is None:
            report.add("warn", "key_rotation_untrusted", where,
                       f"key {fingerprint(new)[:16]} is endorsed by key {old_fp[:16]}, "
                       "which is not trusted here")
        elif signature is None or not endorsement_valid(old, new, signature):
            report.add("fail", "key_rotation_endorsement", where,
                       f"the endorsement of key {fingerprint(new)[:16]} does not verify under "
                       f"key {old_fp[:16]}: a forged rotation")
        else:
            trusted.append(new)
            introduced.append(new)
            report.add("ok", "key_rotation", where,
                       f"key {fingerprint(new)[:16]} endorsed by trusted key {old_fp[:16]}")
    return introduced


def _raw(value: Any, size: int) -> bytes | None:
    if not isinstance(value, str) or len(value) > 2 * size:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None
