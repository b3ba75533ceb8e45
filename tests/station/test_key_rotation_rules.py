"""The station's rules for a device's keys after rotations, without a station: which entry may
add a key (:func:`check_rotation`) and which keys stored entries give a device
(:func:`trusted_successors`)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.evidence.canonical import canonical_json
from agent.evidence.key_rotation import rotation_entry
from agent.evidence.keys import DeviceKey, KeyRotation, rotation_message
from agent.station.devicekeys import check_rotation, trusted_successors
from agent.station.refusal import Refused

UTC = "2026-11-30T08:00:00.000000Z"


def _key() -> DeviceKey:
    return DeviceKey(Ed25519PrivateKey.generate())


def _entry(old: DeviceKey, new: DeviceKey, *, signer: DeviceKey | None = None,
           **change: object) -> bytes:
    """The canonical bytes of the log entry rotating ``old`` to ``new`` (endorsed by
    ``signer``, the old key unless a forger is named); ``change`` edits fields after."""
    sig = (signer or old).sign(rotation_message(old.public_bytes, new.public_bytes))
    doc = rotation_entry(KeyRotation(old.public_bytes, new.public_bytes, sig), utc=UTC)
    doc.update(change)
    return canonical_json({k: v for k, v in doc.items() if v is not None})


def _code(data: bytes, keys: list[bytes]) -> str:
    with pytest.raises(Refused) as caught:
        check_rotation(data, keys)
    assert caught.value.status == 422
    return caught.value.code


def test_an_endorsed_rotation_from_a_key_of_the_device_adds_its_successor() -> None:
    a, b = _key(), _key()
    s = check_rotation(_entry(a, b), [a.public_bytes])
    assert (s.public_key, s.endorsed_by, s.known) == (b.public_bytes, a.fingerprint, False)
    assert s.fingerprint == b.fingerprint


def test_presenting_a_key_the_device_has_is_known_not_an_error() -> None:
    """Twice, or a rotation older than the enrolment (the device enrolled with the new key)."""
    a, b = _key(), _key()
    assert check_rotation(_entry(a, b), [a.public_bytes, b.public_bytes]).known
    assert check_rotation(_entry(a, b), [b.public_bytes]).known


def test_each_bad_entry_is_refused_with_its_own_reason() -> None:
    a, b, mallory = _key(), _key(), _key()
    keys = [a.public_bytes]
    good = _entry(a, b)
    assert _code(_entry(a, b, signer=mallory), keys) == "forged-endorsement"
    assert _code(_entry(mallory, b), keys) == "unknown-old-key"
    assert _code(_entry(a, b, endorsement=None), keys) == "unendorsed-rotation"
    assert _code(b"\x00garbage", keys) == "bad-rotation"
    assert _code(json.dumps(json.loads(good), indent=1).encode(), keys) == "bad-rotation"
    assert _code(_entry(a, b, type="acknowledged"), keys) == "bad-rotation"
    assert _code(_entry(a, b, new_fingerprint=mallory.fingerprint), keys) == "bad-rotation"
    assert _code(_entry(a, b, new_key="AAAA"), keys) == "bad-rotation"
    assert _code(_entry(a, b, endorsement="bm90IGEgc2lnbmF0dXJl"), keys) == "bad-rotation"
    assert _code(_entry(a, b, old_fingerprint=5), keys) == "bad-rotation"
    assert _code(good + b" " * 5000, keys) == "bad-rotation"


def test_a_forged_endorsement_is_an_alarm_the_others_are_not() -> None:
    a, b, mallory = _key(), _key(), _key()
    with pytest.raises(Refused) as forged:
        check_rotation(_entry(a, b, signer=mallory), [a.public_bytes])
    with pytest.raises(Refused) as unknown:
        check_rotation(_entry(mallory, b), [a.public_bytes])
    assert forged.value.alarm and not unknown.value.alarm


def test_a_chain_is_followed_in_any_stored_order() -> None:
    a, b, c = _key(), _key(), _key()
    chain = [_entry(a, b), _entry(b, c)]
    want = [b.public_bytes, c.public_bytes]
    assert trusted_successors(a.public_bytes, chain) == want
    assert sorted(trusted_successors(a.public_bytes, chain[::-1])) == sorted(want)


def test_stored_rows_without_a_valid_endorsement_introduce_nothing() -> None:
    """A row written into the index by hand, a forgery, a branch from a key the device never
    had: none of them gives the device a key; a chain stops at the broken link."""
    a, b, c, mallory = _key(), _key(), _key(), _key()
    rows = [_entry(a, b, signer=mallory), _entry(b, c), _entry(mallory, _key()), b"{}"]
    assert trusted_successors(a.public_bytes, rows) == []
    assert trusted_successors(a.public_bytes, [_entry(a, b), *rows]) == [b.public_bytes,
                                                                         c.public_bytes]



def test_a_second_successor_of_a_retired_key_is_a_fork_and_an_alarm() -> None:
    """A endorsed B; an entry in which A endorses C (its signature valid: whoever holds the
    retired A wrote it) is refused ``retired-old-key`` with an alarm, like a forgery; B's own
    rotation presented again is still no error."""
    a, b, c = _key(), _key(), _key()
    keys = [a.public_bytes, b.public_bytes]
    with pytest.raises(Refused) as fork:
        check_rotation(_entry(a, c), keys)
    assert (fork.value.status, fork.value.code, fork.value.alarm) == (422, "retired-old-key",
                                                                     True)
    assert "already endorsed its successor" in fork.value.message
    assert check_rotation(_entry(a, b), keys).known
    assert check_rotation(_entry(b, c), keys).public_key == c.public_bytes


def test_stored_rows_follow_one_successor_per_key() -> None:
    """Two stored successors of A (a fork taken before the rule): the first to join counts,
    the other introduces nothing; the chain goes on from the one that counts."""
    a, b, c, d = _key(), _key(), _key(), _key()
    assert trusted_successors(a.public_bytes, [_entry(a, b), _entry(a, c)]) == [b.public_bytes]
    assert trusted_successors(a.public_bytes, [_entry(b, d), _entry(a, b), _entry(a, c)]) == [
        b.public_bytes, d.public_bytes]
