"""Which of a device's keys may sign what, by log position, with what the station knows.

``bodycam verify`` gives each device key a window of log positions
(:mod:`agent.evidence.key_windows`): a rotation at entry ``r`` ends the old key's window there
(it signs manifests of entries up to ``r`` and checkpoints up to size ``r + 1``, the one over
its own rotation) and starts the new key's at ``r + 1``. A key is rotated because it may be in
someone else's hands, so the station applies the same rule: a retired key must not get a
forged segment receipted or a forged, longer log witnessed.

The station knows a rotation's position in two ways (:func:`retirements`):

* **proven** -- the device presented the rotation with its log index and an inclusion proof
  into a signed checkpoint consistent with the one the station holds (``POST …/key-rotation``,
  docs/STATION-API.md §4b). The old key's span ends exactly at ``r + 1``;
* **bounded** -- the rotation was taken without a position (an older device, the entries an
  MQTT checkpoint message carries, a person at ``bodycam station keys``), but the checkpoint
  the station holds is signed by a later key of the chain. A later key signs no checkpoint
  smaller than ``r + 1``, so the held size ``s`` bounds the span: nothing the retired key signs
  past ``s`` is honest. The bound is looser than the truth (a retired key could still sign
  entries between ``r`` and ``s``), but never refuses what the device honestly signed; it is
  what the station can apply without a proven position.

Until either is known (a rotation taken, and every held checkpoint still signed by the old
key) the old key's span stays open: refusing it then would refuse the honest segments sealed
before the rotation, which reach the station signed by the old key after the rotation was
presented. Pure; no I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from agent.evidence.checkpoint import SignedCheckpoint, parse_signed_checkpoint
from agent.evidence.keys import fingerprint
from hw.errors import VerificationError

from .enrolment import Enrolment, Retirement
from .refusal import Refused

__all__ = ["check_manifest_key", "checkpoint_signer", "retirements"]


def retirements(keys: Sequence[bytes], positions: Sequence[int | None],
                held_size: int | None, held_note: bytes) -> tuple[Retirement | None, ...]:
    """Where each key of the chain ``keys`` but the last stops signing: ``positions[i]`` is
    the proven log index of the rotation that retired ``keys[i]`` (None: not proven); the held
    checkpoint (``held_size``, its signed note) bounds the spans of the keys before the one
    that signed it."""
    later = _held_signer(tuple(keys), held_size, held_note)
    out: list[Retirement | None] = []
    for i, r in enumerate(positions[:len(keys) - 1]):
        if r is not None:
            out.append(Retirement(r + 1, proven=True))
        elif later is not None and held_size is not None and i < later:
            out.append(Retirement(held_size, proven=False))
        else:
            out.append(None)
    return tuple(out)


@functools.lru_cache(maxsize=1024)
def _held_signer(keys: tuple[bytes, ...], size: int | None, note: bytes) -> int | None:
    """The position in ``keys`` of the latest key whose signature the held note carries
    (remembered: the index asks on every request of a device, and the held note changes only
    when the log grows)."""
    if size is None or not note:
        return None
    try:
        signed = parse_signed_checkpoint(note)
    except VerificationError:
        return None
    for i in range(len(keys) - 1, 0, -1):
        try:
            signed.verify([keys[i]])
        except VerificationError:
            continue
        return i
    return None


def _span(device: Enrolment, key: bytes, what: str) -> str:
    r = device.retirement(key)
    assert r is not None
    where = (f"its rotation at log entry {r.end - 1}" if r.proven else
             f"a rotation inside the first {r.end} entries (the station holds a checkpoint "
             "of that size signed by a later key)")
    return (f"{what} signed by key {fingerprint(key)[:16]}, which {where} retired; a retired "
            "(perhaps compromised) key signs nothing after its rotation")


def checkpoint_signer(signed: SignedCheckpoint, device: Enrolment) -> bytes:
    """The device key that signed ``signed`` and may sign a checkpoint of its size. A
    signature only by a retired key past its span is 422 ``checkpoint-retired-key``, an alarm
    (someone extends the log with a key the device gave up); VerificationError when no key of
    the device signed it at all."""
    size = signed.checkpoint.size

    def may(key: bytes) -> bool:
        r = device.retirement(key)
        return r is None or size <= r.end

    try:
        return signed.verify([k for k in device.keys if may(k)])
    except VerificationError:
        key = signed.verify(device.keys)  # raises when no key of the device signed it
    raise Refused(422, "checkpoint-retired-key",
                  _span(device, key, f"a checkpoint of size {size}"), alarm=True)


def check_manifest_key(device: Enrolment, key: bytes, leaf_index: int) -> None:
    """A manifest signed by ``key`` for the segment logged at ``leaf_index``: 422
    ``manifest-retired-key`` (an alarm) when the key was retired before that entry, 422
    ``manifest-key-not-yet-valid`` (an alarm) when a successor signed an entry at or before the
    proven rotation that introduced it -- the device signs a manifest and logs it under one
    lock with its rotations, so no honest segment before a rotation carries the new key's
    signature (verify's ``manifest_key_not_yet_valid``)."""
    r = device.retirement(key)
    if r is not None and leaf_index >= r.end:
        raise Refused(422, "manifest-retired-key",
                      _span(device, key, f"the manifest of log entry {leaf_index}"),
                      alarm=True)
    keys = device.keys
    i = keys.index(key) if key in keys else 0
    introduced = device.retirement(keys[i - 1]) if i > 0 else None
    if introduced is not None and introduced.proven and leaf_index < introduced.end:
        raise Refused(422, "manifest-key-not-yet-valid",
                      f"the manifest of log entry {leaf_index} is signed by key "
                      f"{fingerprint(key)[:16]}, which the rotation at log entry "
                      f"{introduced.end - 1} introduced: a key signs nothing before it",
                      alarm=True)
