"""Rotating the device key *with* its record in the evidence log: the one implementation.

Two callers rotate: the running agent (:meth:`agent.evidence.store.EvidenceStore.rotate_key`,
holding the store's lock) and ``bodycam keys init --rotate`` when no agent runs
(:mod:`agent.evidence.keys_cli`, holding the log's process lock). Both must leave the same
``key_rotation`` entry -- a verifier, a witness and a court read them as one event type -- so
the step sequence and the entry's fields live here, once.

It sits above both :mod:`~agent.evidence.keys` (which only handles key files) and
:mod:`~agent.evidence.log` (which signs with a key but knows no entry kinds): putting it in
either would have them import each other (keys → log → checkpoint → keys).

The sequence: retire the old key and write the new one (:meth:`DeviceKey.rotate`), append the
entry -- signed, through the checkpoint, by the *old* key, which is how anyone holding only the
old key learns the new one -- then sign from now on with the new key. A crash between the key
files and the append leaves the new key in place without its entry: everything signed before
still verifies with the retired public key kept in ``keys/retired/``, but no log entry
announces the new key (the order both callers always had; not changed here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .keys import DeviceKey, KeyRotation
from .log import AppendResult, EvidenceLog

__all__ = ["rotate_and_log", "rotation_entry"]

ROTATION_EVENT = "key_rotation"


def rotation_entry(rotation: KeyRotation, *, utc: str) -> dict[str, Any]:
    """The log entry of ``rotation`` made at ``utc`` (canonical JSON sorts its fields)."""
    return {"kind": "event", "type": ROTATION_EVENT, "utc": utc, **rotation.event_fields()}


def rotate_and_log(log: EvidenceLog, key_path: Path, *,
                   utc: str) -> tuple[DeviceKey, AppendResult]:
    """Rotate the key at ``key_path``, log the rotation with the old key, switch ``log`` to the
    new one; returns the new key and where the entry landed.

    The caller serialises appends to ``log`` (the store's lock, or the CLI owning the log).
    """
    new, rotation = DeviceKey.rotate(key_path)
    appended = log.append(rotation_entry(rotation, utc=utc))
    log.set_key(new)
    return new, appended
