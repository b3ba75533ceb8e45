"""Trust follows the device key's rotations only through valid endorsements.

Instant rule tests of :func:`follow_rotations` over hand-made log entries: real Ed25519 keys,
real signatures, the report's findings read back."""

from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.evidence.keys import fingerprint, rotation_message
from agent.evidence.report import Report
from agent.evidence.rotation_trust import follow_rotations


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
