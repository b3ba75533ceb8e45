"""The station's key-span rule (agent/station/keyspans.py), pure and instant: a key a rotation at
entry r retired signs checkpoints up to r + 1 entries and manifests of entries up to r; where
the station knows r only as a bound (the held checkpoint a later key signed), the bound is used;
where it knows nothing, the old key's span stays open."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.evidence.checkpoint import Checkpoint, parse_signed_checkpoint, sign_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.log import origin_for
from agent.station.enrolment import Enrolment, Retirement
from agent.station.keyspans import check_manifest_key, checkpoint_signer, retirements
from agent.station.refusal import Refused
from hw.errors import VerificationError

DEVICE = "BC-SPAN-1"


def _key() -> DeviceKey:
    return DeviceKey(Ed25519PrivateKey.generate())


def _note(key: DeviceKey, size: int) -> bytes:
    return sign_checkpoint(Checkpoint(origin_for(DEVICE), size, os.urandom(32)), key)


def _device(a: DeviceKey, b: DeviceKey, ends: tuple[Retirement | None, ...]) -> Enrolment:
    return Enrolment(DEVICE, a.public_bytes, None, {}, successors=(b.public_bytes,),
                     retirements=ends)


def test_a_proven_rotation_ends_the_span_at_its_index_and_a_held_later_key_bounds_it() -> None:
    """Proven r = 4: the span ends at 5 whatever is held. Unproven: a held checkpoint of 9
    signed by the successor bounds it at 9; one signed by the old key (or none) bounds nothing."""
    a, b = _key(), _key()
    keys = [a.public_bytes, b.public_bytes]
    assert retirements(keys, [4], 9, _note(b, 9)) == (Retirement(5, proven=True),)
    assert retirements(keys, [None], 9, _note(b, 9)) == (Retirement(9, proven=False),)
    assert retirements(keys, [None], 9, _note(a, 9)) == (None,)
    assert retirements(keys, [None], None, b"") == (None,)
    assert retirements(keys, [None], 9, b"not a note") == (None,)


def test_a_retired_key_signs_checkpoints_up_to_its_span_and_no_further() -> None:
    """Rotation at entry 4: A's checkpoints of 4 and 5 entries (the one over its rotation) are
    A's; of 6 entries it is refused ``checkpoint-retired-key``, an alarm; B signs any size; a
    key the device never had is no signature at all."""
    a, b = _key(), _key()
    device = _device(a, b, (Retirement(5, proven=True),))
    for size in (4, 5):
        assert checkpoint_signer(parse_signed_checkpoint(_note(a, size)), device) == \
            a.public_bytes
    assert checkpoint_signer(parse_signed_checkpoint(_note(b, 6)), device) == b.public_bytes
    with pytest.raises(Refused) as caught:
        checkpoint_signer(parse_signed_checkpoint(_note(a, 6)), device)
    assert (caught.value.status, caught.value.code, caught.value.alarm) == (
        422, "checkpoint-retired-key", True)
    assert "rotation at log entry 4" in caught.value.message
    with pytest.raises(VerificationError):
        checkpoint_signer(parse_signed_checkpoint(_note(_key(), 3)), device)


def test_a_retired_key_signs_manifests_of_entries_up_to_its_rotation_only() -> None:
    """Rotation at 4: A's manifests of entries 0..4 pass, of entry 5 on are refused
    ``manifest-retired-key`` (an alarm); the bound form says it is a bound; an open span and
    the key in force pass anywhere."""
    a, b = _key(), _key()
    proven = _device(a, b, (Retirement(5, proven=True),))
    for i in range(5):
        check_manifest_key(proven, a.public_bytes, i)
    check_manifest_key(proven, b.public_bytes, 1000)
    with pytest.raises(Refused) as caught:
        check_manifest_key(proven, a.public_bytes, 5)
    assert (caught.value.code, caught.value.alarm) == ("manifest-retired-key", True)
    bounded = _device(a, b, (Retirement(9, proven=False),))
    check_manifest_key(bounded, a.public_bytes, 8)
    with pytest.raises(Refused) as caught:
        check_manifest_key(bounded, a.public_bytes, 9)
    assert "signed by a later key" in caught.value.message
    check_manifest_key(_device(a, b, (None,)), a.public_bytes, 1000)


def test_a_successor_signs_no_manifest_of_an_entry_before_its_proven_rotation() -> None:
    """Rotation at 4 proven: B's manifests of entries 5 on pass, of entry 4 or before are
    refused ``manifest-key-not-yet-valid`` (an alarm); with only a bound (no proven position)
    the station cannot tell, and refuses nothing honest."""
    a, b = _key(), _key()
    proven = _device(a, b, (Retirement(5, proven=True),))
    check_manifest_key(proven, b.public_bytes, 5)
    for i in (0, 4):
        with pytest.raises(Refused) as caught:
            check_manifest_key(proven, b.public_bytes, i)
        assert (caught.value.status, caught.value.code, caught.value.alarm) == (
            422, "manifest-key-not-yet-valid", True)
    assert "rotation at log entry 4" in caught.value.message
    check_manifest_key(_device(a, b, (Retirement(9, proven=False),)), b.public_bytes, 2)
    check_manifest_key(_device(a, b, (None,)), b.public_bytes, 0)
