"""Trust follows the device key's rotations only through valid endorsements.

Instant rule tests of :func:`follow_rotations` over hand-made log entries: real Ed25519 keys,
real signatures, the report's findings read back."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.evidence.keys import fingerprint, rotation_message
from agent.evidence.report import Report
from agent.evidence.rotation_trust import RotationProblem, follow_rotations, judge_rotation


def _key() -> tuple[Ed25519PrivateKey, bytes]:
    private = Ed25519PrivateKey.generate()
    return private, private.public_key().public_bytes_raw()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _rotation(old: tuple[Ed25519PrivateKey, bytes], new: bytes, *,
              signer: Ed25519PrivateKey | None = None, endorse: bool = True) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": "event", "type": "key_rotation", "utc": "2026-11-30T08:00:00Z",
                             "old_fingerprint": fingerprint(old[1]),
                             "new_fingerprint": fingerprint(new), "new_key": _b64(new)}
    if endorse:
        sig = (signer or old[0]).sign(rotation_message(old[1], new))
        entry["endorsement"] = _b64(sig)
    return entry


def _findings(report: Report) -> list[tuple[str, str]]:
    return [(f.level, f.code) for f in report.findings]


def test_a_chain_of_endorsed_rotations_introduces_each_successor_in_order() -> None:
    """Registered key A; A endorses B, B endorses C: B and C become trusted."""
    a, b, c = _key(), _key(), _key()
    r = Report("t")
    got = follow_rotations([{}, _rotation(a, b[1]), {"kind": "segment"}, _rotation(b, c[1])],
                           [a[1]], r)
    assert got == [b[1], c[1]]
    assert _findings(r) == [("ok", "key_rotation"), ("ok", "key_rotation")]


def test_a_forged_endorsement_introduces_nothing_and_fails() -> None:
    """B's announcement signed by someone else than A (or the signature mangled) is a forgery."""
    a, b, mallory = _key(), _key(), _key()
    for entry in (_rotation(a, b[1], signer=mallory[0]),
                  {**_rotation(a, b[1]), "endorsement": _b64(b"\x00" * 64)},
                  {**_rotation(a, b[1]), "new_key": _b64(mallory[1]),
                   "new_fingerprint": fingerprint(mallory[1])}):
        r = Report("t")
        assert follow_rotations([entry], [a[1]], r) == []
        assert _findings(r) == [("fail", "key_rotation_endorsement")]


def test_an_unendorsed_or_untrusted_rotation_introduces_nothing_but_says_so() -> None:
    """An older device's rotation (no endorsement), or one from a key nobody trusts here."""
    a, b, c = _key(), _key(), _key()
    r = Report("t")
    assert follow_rotations([_rotation(a, b[1], endorse=False), _rotation(c, b[1])], [a[1]], r) == []
    assert _findings(r) == [("warn", "key_rotation_unendorsed"), ("warn", "key_rotation_untrusted")]


def test_malformed_rotation_fields_are_findings_not_crashes() -> None:
    """Untrusted input: wrong types, bad base64, wrong lengths, a huge string."""
    a, b = _key(), _key()
    good = _rotation(a, b[1])
    for bad in ({"new_key": 5}, {"new_key": "!!"}, {"new_key": _b64(b"x" * 31)},
                {"old_fingerprint": None}, {"new_key": "A" * 10_000}):
        r = Report("t")
        assert follow_rotations([{**good, **bad}], [a[1]], r) == []
        assert _findings(r) == [("fail", "key_rotation_malformed")]
    for bad in ({"endorsement": 7}, {"endorsement": "A" * 10_000}, {"endorsement": _b64(b"s")},
                {"new_fingerprint": fingerprint(a[1])}):
        r = Report("t")
        assert follow_rotations([{**good, **bad}], [a[1]], r) == []
        assert _findings(r) == [("fail", "key_rotation_malformed")]


def test_the_findings_name_the_entry_and_say_why_in_words() -> None:
    """What a defence expert reads: each finding's place (the log entry) and its words."""
    a, b, c, d, mallory = _key(), _key(), _key(), _key(), _key()
    fa, fb, fc, fd = (fingerprint(k[1])[:16] for k in (a, b, c, d))
    fm = fingerprint(mallory[1])[:16]
    r = Report("t")
    entries = [
        {"kind": "segment"},
        _rotation(a, b[1]),                                # 1: introduces b, retires a
        _rotation(a, b[1]),                                # 2: b again: already trusted
        _rotation(b, c[1], signer=mallory[0]),             # 3: forged
        _rotation(mallory, c[1]),                          # 4: from a key nobody trusts
        _rotation(mallory, d[1], endorse=False),           # 5: unendorsed, from nobody's key
        {**_rotation(b, c[1]), "new_key": "!!"},           # 6: not base64
        {**_rotation(b, c[1]), "new_key": _b64(b"x" * 31)},  # 7: wrong length
        {**_rotation(b, c[1]), "old_fingerprint": "ab"},   # 8: not a fingerprint
        {**_rotation(b, c[1]), "new_fingerprint": fa},     # 9: fingerprint of another key
        _rotation(b, c[1]),                                # 10: introduces c after all that
        _rotation(c, d[1], endorse=False),                 # 11: unendorsed: retires c
        _rotation(a, d[1]),                                # 12: a second successor of a
    ]
    assert follow_rotations(entries, [a[1]], r) == [b[1], c[1]]
    assert [(f.level, f.code, f.where, f.message) for f in r.findings] == [
        ("ok", "key_rotation", "log entry 1",
         f"key {fb} endorsed by trusted key {fa}, which signs nothing after this entry"),
        ("ok", "key_rotation", "log entry 2", f"to key {fb}, already trusted"),
        ("fail", "key_rotation_endorsement", "log entry 3",
         f"the endorsement of key {fc} does not verify under key {fb}: a forged rotation"),
        ("warn", "key_rotation_untrusted", "log entry 4",
         f"the rotation to key {fc} is from key {fm}, which is not trusted here"),
        ("warn", "key_rotation_untrusted", "log entry 5",
         f"the rotation to key {fd} is from key {fm}, which is not trusted here"),
        ("fail", "key_rotation_malformed", "log entry 6", "new_key is not base64"),
        ("fail", "key_rotation_malformed", "log entry 7", "new_key is 31 bytes, not 32"),
        ("fail", "key_rotation_malformed", "log entry 8",
         "old_fingerprint is not a SHA-256 fingerprint"),
        ("fail", "key_rotation_malformed", "log entry 9",
         "new_fingerprint is not the SHA-256 of new_key"),
        ("ok", "key_rotation", "log entry 10",
         f"key {fc} endorsed by trusted key {fb}, which signs nothing after this entry"),
        ("warn", "key_rotation_unendorsed", "log entry 11",
         f"key {fd} is announced without the old key's endorsement (a device from before "
         "endorsements)"),
        ("fail", "key_rotation_fork", "log entry 12",
         f"the rotation to key {fd} is from key {fa}, which already endorsed its successor "
         "and is retired: a second successor is a fork, written by whoever holds the retired "
         "key"),
    ]


def test_judging_says_which_key_endorsed_even_a_known_successor() -> None:
    """The station logs who endorsed a key; a rotation it already knows still names it."""
    a, b = _key(), _key()
    judged = judge_rotation(_rotation(a, b[1]), [a[1], b[1]])
    assert (judged.new_key, judged.old_fingerprint, judged.known) == (b[1], fingerprint(a[1]), True)
    with pytest.raises(RotationProblem) as caught:
        judge_rotation({**_rotation(a, b[1]), "endorsement": "A" * 200}, [a[1]])
    assert (caught.value.code, str(caught.value)) == (
        "bad-rotation", "endorsement is not base64 of 64 bytes")
