"""Rotating the device key *with* its record in the evidence log: the one implementation.

Two callers rotate: the running agent (:meth:`agent.evidence.store.EvidenceStore.rotate_key`,
holding the store's lock) and ``bodycam keys init --rotate`` when no agent runs
(:mod:`agent.evidence.keys_cli`, holding the log's process lock). Both must leave the same
``key_rotation`` entry -- a verifier, a witness and a court read them as one event type -- so
the step sequence and the entry's fields live here, once.

It sits above both :mod:`~agent.evidence.keys` (which only handles key files) and
:mod:`~agent.evidence.log` (which signs with a key but knows no entry kinds): putting it in
either would have them import each other (keys → log → checkpoint → keys).

The sequence, in two steps around the announcement so that a crash at any point leaves a
device whose key and log agree:

1. the successor key is written to ``device.key.next`` (:meth:`DeviceKey.prepare_next`);
   the device key is unchanged;
2. the ``key_rotation`` entry is appended -- signed, through the checkpoint, by the *old* key,
   which is how anyone holding only the old key learns the new one -- and, under the same
   lock of the log, the successor re-signs that checkpoint and signs from then on
   (``EvidenceLog.append(then_key=…)``: nothing reading the log sees the old key's checkpoint
   as the newest, which a rotation's proven position relies on at the station);
3. the successor becomes ``device.key``, the old public half kept in ``keys/retired/``
   (:meth:`DeviceKey.commit_next`).

A crash before 2 leaves an unannounced ``.next``, which :func:`finish_interrupted_rotation`
(run before the key is loaded, at every start and before every rotation) discards; a crash
after 2 leaves an announced one, which it installs -- after making sure a checkpoint signed by
the old key covers the announcement (a crash between the entry and its checkpoint leaves it
uncovered; opening the log with the old key covers it). Before this order a crash between the
key files and the entry left a new key no log entry announced: every later checkpoint signed
by a key the log never introduced.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from pathlib import Path
from typing import Any

from agent.atomic import atomic_write, fsync_dir
from hw.errors import EvidenceError, VerificationError

from .canonical import parse_canonical
from .keys import PUB_NAME, DeviceKey, KeyRotation, next_key_path
from .log import CHECKPOINT, ENTRIES, EvidenceLog, origin_for, replay_entries

__all__ = ["device_id_of_log", "finish_interrupted_rotation", "rotate_and_log", "rotation_entry"]

_log = logging.getLogger(__name__)

ROTATION_EVENT = "key_rotation"


def rotation_entry(rotation: KeyRotation, *, utc: str) -> dict[str, Any]:
    """The log entry of ``rotation`` made at ``utc`` (canonical JSON sorts its fields)."""
    return {"kind": "event", "type": ROTATION_EVENT, "utc": utc, **rotation.event_fields()}


def rotate_and_log(log: EvidenceLog, key_path: Path, *, utc: str) -> tuple[DeviceKey, int]:
    """Rotate the key at ``key_path``, log the rotation with the old key, switch ``log`` to the
    new one; returns the new key and the index of its ``key_rotation`` entry.

    Once the entry is in the log the rotation has happened, whatever fails after it: the old
    key's window ends at its checkpoint over that entry (docs/EVIDENCE-FORMAT.md §4), so
    anything it signed later would fail verification. If the checkpoint's write fails (a full
    disk), the log signs with the successor from now on and writes that checkpoint at its next
    chance; if installing the key files fails, the ``.next`` file stays for
    :func:`finish_interrupted_rotation` at the next start. Only an entry that never landed
    discards the successor.

    The caller serialises appends to ``log`` (the store's lock, or the CLI owning the log).
    """
    new, rotation = DeviceKey.prepare_next(key_path)
    index = log.size
    try:
        log.append(rotation_entry(rotation, utc=utc), then_key=new)
    except BaseException as exc:
        if log.size == index:  # not announced: the successor must not survive to be installed
            with contextlib.suppress(OSError):
                next_key_path(key_path).unlink()
            raise
        _log.error("the checkpoint over key rotation entry %d could not be written (%s); the "
                   "new key signs it with the next append", index, exc)
        log.set_key(new, durable=False)
    try:
        DeviceKey.commit_next(key_path)
    except OSError as exc:
        _log.error("installing the rotated key failed (%s); keys/%s stays and is installed at "
                   "the next start", exc, next_key_path(key_path).name)
    return new, index


def finish_interrupted_rotation(key_path: Path, log_dir: Path) -> str | None:
    """Complete or undo a rotation a crash interrupted; what was done, or None if nothing was.

    Run before the device key is loaded and before the log is opened (the caller holds no
    log; a running agent's log lock makes this fail with EvidenceError).
    """
    successor = next_key_path(key_path)
    if not successor.exists():
        _heal_public(key_path)
        return None
    old, new = DeviceKey.load(key_path), DeviceKey.load(successor)
    entries = log_dir / ENTRIES
    data = entries.read_bytes() if entries.exists() else b""
    at = _announced_at(data, old, new)
    if at is None:
        successor.unlink()
        fsync_dir(key_path.parent)
        return f"discarded an unannounced successor key {new.fingerprint_short}"
    if at == len(replay_entries(data).records) - 1:
        # Opening the log with the old key signs a checkpoint over the announcement if the
        # crash came between the entry and its checkpoint -- the old key's last signature
        # (its window ends there). Entries after it were signed by the successor already
        # (its files failed to install, rotate_and_log): the successor's own open covers them.
        log = EvidenceLog(log_dir, old, origin_for(device_id_of_log(log_dir)))
        log.close()
    DeviceKey.commit_next(key_path)
    return f"completed the rotation to key {new.fingerprint_short} announced in the log"


def _announced_at(data: bytes, old: DeviceKey, new: DeviceKey) -> int | None:
    """Index of the log's key_rotation entry from ``old`` to ``new``, if there is one."""
    wanted = (old.fingerprint, new.fingerprint, base64.b64encode(new.public_bytes).decode())
    found = None
    for i, record in enumerate(replay_entries(data).records):
        with contextlib.suppress(EvidenceError, VerificationError, ValueError):
            e = parse_canonical(record)
            if e.get("type") == ROTATION_EVENT and (
                    e.get("old_fingerprint"), e.get("new_fingerprint"), e.get("new_key")) == wanted:
                found = i
    return found


def device_id_of_log(log_dir: Path) -> str:
    """The device id a log's checkpoint names (its origin's last part)."""
    try:
        origin = (log_dir / CHECKPOINT).read_text().split("\n", 1)[0]
    except (OSError, UnicodeDecodeError):
        origin = ""
    device_id = origin.rsplit("/", 1)[-1]
    if not origin or not device_id:
        raise EvidenceError(f"{log_dir}: cannot read the log's checkpoint to find the device id")
    return device_id


def _heal_public(key_path: Path) -> None:
    """``device.pub`` says the device key's public half (a crash may have left the old one)."""
    pub = key_path.with_name(PUB_NAME)
    if not key_path.exists():
        return
    key = DeviceKey.load(key_path)
    with contextlib.suppress(OSError):
        if pub.read_bytes() == key.public_pem:
            return
    atomic_write(pub, key.public_pem, mode=0o644)
