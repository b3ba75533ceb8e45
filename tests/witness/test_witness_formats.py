"""Byte-exact formats: vkeys, note signatures and cosignature/v1, against independent vectors.

Vectors: ``SPEC_*`` are copied from the C2SP signed-note specification's own example; the
others were computed with aics-tlog 0.2.1 (an independent Python implementation of C2SP
signed-note / tlog-checkpoint / tlog-cosignature, from PyPI) from the fixed seeds below.
Ed25519 is deterministic, so each signature is reproducible byte for byte.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.evidence.checkpoint import Checkpoint, parse_signed_checkpoint, sign_checkpoint
from agent.evidence.keys import DeviceKey
from agent.witness import (
    CosignatureInvalid,
    Cosigner,
    VerifierKey,
    WitnessUnavailable,
    add_cosignatures,
    verified_cosignatures,
)
from agent.witness.cosignature import cosignature_message, split_note
from agent.witness.protocol import parse_conflict, parse_cosignatures

SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfX"
             "ppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n").encode()

WITNESS_SEED = bytes(range(32))
DEVICE_SEED = bytes(range(32, 64))
ORIGIN = "bodycam/v1/BC-0001"
ROOT = hashlib.sha256(b"bodycam witness vector").digest()
TIME = 1764460800
DEVICE_VKEY = "bodycam/v1/BC-0001+58995f26+ASmsuuFBvMrwsi4alNNNC8c2HlJtC/4SyJeUvJMilm3X"
WITNESS_VKEY = "witness.example/w1+e75f6532+BAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"
CHECKPOINT = ("bodycam/v1/BC-0001\n5\nO3iEXvE1fID4RvwthmHUQpxz7vNRFD1CyY+z7YqC8vU=\n\n"
              "\u2014 bodycam/v1/BC-0001 WJlfJhCi8HXp7s+C8dl+IFzwSqhyzv8XOKV+kA8L4SRPnNPLHOCFlIJ+"
              "ardHIM/lG24AKLDXX1+GEpYr1ZeetgY5pQ4=\n").encode()
COSIGNATURE_LINE = ("\u2014 witness.example/w1 519lMgAAAABpK4kAMPwfMnfWr/2Z/cIDdfgFi8U4Cg7q14TeDYpZGFj8"
                    "+d8bVxyRGTBD4swJVt8f2Qe/9/SFtvKjHd4IgDy8M62kAg==\n").encode()
MESSAGE = (b"cosignature/v1\ntime 1764460800\n"
           b"bodycam/v1/BC-0001\n5\nO3iEXvE1fID4RvwthmHUQpxz7vNRFD1CyY+z7YqC8vU=\n")


def _witness() -> Cosigner:
    return Cosigner("witness.example/w1", Ed25519PrivateKey.from_private_bytes(WITNESS_SEED))


def test_spec_example_vkey_parses_and_verifies_the_spec_note():
    """The signed-note specification's example vkey parses, and its note verifies under it."""
    vkey = VerifierKey.parse(SPEC_VKEY)
    assert (vkey.name, vkey.key_type, vkey.key_id.hex()) == ("example.com/foo", 1, "530d903a")
    assert str(vkey) == SPEC_VKEY
    body, lines = split_note(SPEC_NOTE)
    assert body == b"This is an example message.\n"
    (name, blob), = lines
    assert (name, blob[:4]) == (vkey.name, vkey.key_id)
    Ed25519PublicKey.from_public_bytes(vkey.public).verify(blob[4:], body)


def test_device_vkey_and_checkpoint_match_the_independent_implementation():
    """Our device vkey (type 0x01) and signed checkpoint equal aics-tlog's, byte for byte."""
    private = Ed25519PrivateKey.from_private_bytes(DEVICE_SEED)
    key = DeviceKey(private)
    assert str(VerifierKey.for_ed25519(ORIGIN, key.public_bytes)) == DEVICE_VKEY
    assert sign_checkpoint(Checkpoint(ORIGIN, 5, ROOT), key) == CHECKPOINT


def test_cosignature_matches_the_independent_implementation():
    """Message, vkey (type 0x04) and cosignature line equal aics-tlog's; the line verifies."""
    w = _witness()
    assert str(w.vkey) == WITNESS_VKEY
    assert VerifierKey.parse(WITNESS_VKEY) == w.vkey
    body = Checkpoint(ORIGIN, 5, ROOT).body()
    assert cosignature_message(body, TIME) == MESSAGE
    cosig = w.cosign(body, TIME)
    assert cosig.line() == COSIGNATURE_LINE
    note = add_cosignatures(CHECKPOINT, [cosig])
    assert note == CHECKPOINT + COSIGNATURE_LINE
    found = verified_cosignatures(note, [VerifierKey.parse(WITNESS_VKEY)])
    assert found["witness.example/w1"].timestamp == TIME
    # The device's own parser still reads the checkpoint (a 76-byte blob is another type).
    assert parse_signed_checkpoint(note).checkpoint == Checkpoint(ORIGIN, 5, ROOT)


def test_adding_the_same_cosignature_twice_keeps_one_line():
    """add_cosignatures does not repeat a line already on the note."""
    cosig = _witness().cosign(Checkpoint(ORIGIN, 5, ROOT).body(), TIME)
    once = add_cosignatures(CHECKPOINT, [cosig])
    assert add_cosignatures(once, [cosig]) == once


def test_a_tampered_cosignature_is_rejected_and_unknown_ones_ignored():
    """A known key's line that fails rejects the note; a stranger's line is skipped."""
    vkey = VerifierKey.parse(WITNESS_VKEY)
    other = Cosigner("witness.example/w2", Ed25519PrivateKey.generate())
    stranger = other.cosign(Checkpoint(ORIGIN, 5, ROOT).body(), TIME).line()
    assert verified_cosignatures(CHECKPOINT + stranger, [vkey]) == {}
    # Same time and key, another size: the signature does not cover this body.
    wrong = _witness().cosign(Checkpoint(ORIGIN, 6, ROOT).body(), TIME).line()
    with pytest.raises(CosignatureInvalid):
        verified_cosignatures(CHECKPOINT + wrong, [vkey])
    # A cosignature on the right body but a different timestamp claimed in the line.
    blob = bytearray(base64.b64decode(COSIGNATURE_LINE.split(b" ")[2]))
    blob[11] ^= 1
    forged = b"\xe2\x80\x94 witness.example/w1 " + base64.b64encode(bytes(blob)) + b"\n"
    with pytest.raises(CosignatureInvalid):
        verified_cosignatures(CHECKPOINT + forged, [vkey])


def test_a_device_vkey_cannot_verify_cosignatures():
    """A type 0x01 key with the witness's name and key is not a cosigner key (domain separation)."""
    w = _witness()
    as_note_key = VerifierKey.for_ed25519(w.name, w.vkey.public)
    note = add_cosignatures(CHECKPOINT, [w.cosign(Checkpoint(ORIGIN, 5, ROOT).body(), TIME)])
    assert verified_cosignatures(note, [as_note_key]) == {}
    assert as_note_key.key_id != w.vkey.key_id


@pytest.mark.parametrize("text", [
    "", "a+b", "example.com/foo+530d903a",
    "example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2",
    "example.com/foo+530d903a+!!!", "ex ample+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "example.com/foo+zzzzzzzz+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "example.com/foo+530d903a+BekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",
    "n+00000000+" + "A" * 600,
])
def test_malformed_vkeys_are_named_errors(text):
    """A vkey with a wrong id, type, length, encoding or name is CosignatureInvalid."""
    with pytest.raises(CosignatureInvalid):
        VerifierKey.parse(text)


@pytest.mark.parametrize("note", [
    b"no blank line\n", b"text\n\n", b"text\n\n\xe2\x80\x94 a\n", b"text\n\n\xe2\x80\x94 a b c\n",
    b"text\n\n\xe2\x80\x94 a QUJD\n", b"\xff\n\n\xe2\x80\x94 a QUJDREVG\n",
    b"te\rxt\n\n\xe2\x80\x94 a QUJDREVG\n",
    b"text\n\n" + b"\xe2\x80\x94 a QUJDREVG\n" * 65, b"x" * 70_000,
])
def test_malformed_notes_are_named_errors(note):
    """split_note refuses what is not a bounded, well-formed signed note."""
    with pytest.raises(CosignatureInvalid):
        split_note(note)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_witness_responses_are_named_errors(body):
    """Whatever a (hostile) witness answers, the client's parsers raise only WitnessUnavailable."""
    for parse in (parse_cosignatures, parse_conflict):
        with contextlib.suppress(WitnessUnavailable):
            parse(body)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_fuzz_vkey_text_is_parsed_or_named(text):
    """Any vkey string parses (and round-trips) or raises CosignatureInvalid."""
    try:
        key = VerifierKey.parse(text)
    except CosignatureInvalid:
        return
    assert VerifierKey.parse(str(key)) == key
