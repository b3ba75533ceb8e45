"""A court bundle's key rotations (``keys/device-rotations.json``) are followed by the
verifier's one rule (agent/evidence/rotation_trust.py): a second successor of a retired key is
a fork, a failure, and introduces no key. Real keys; the bundle's key files written by hand as
the exporter writes them (agent/station/exporter.py)."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.evidence.bundle import BUNDLE_FORMAT, MARKER, ROTATIONS, ROTATIONS_FORMAT, check_contents
from agent.evidence.canonical import canonical_json
from agent.evidence.key_rotation import rotation_entry
from agent.evidence.keys import DeviceKey, KeyRotation, rotation_message

UTC = "2026-11-30T08:00:00.000000Z"


def _key() -> DeviceKey:
    return DeviceKey(Ed25519PrivateKey.generate())


def _entry(old: DeviceKey, new: DeviceKey) -> str:
    sig = old.sign(rotation_message(old.public_bytes, new.public_bytes))
    return canonical_json(rotation_entry(KeyRotation(old.public_bytes, new.public_bytes, sig),
                                         utc=UTC)).decode()


def _bundle(root: Path, enrolled: DeviceKey, entries: list[str]) -> Path:
    (root / "keys").mkdir(parents=True)
    (root / "keys" / "device.pub").write_bytes(enrolled.public_pem)
    (root / "keys" / "station.pub").write_bytes(_key().public_pem)
    (root / ROTATIONS).write_text(json.dumps({"format": ROTATIONS_FORMAT, "entries": entries}))
    (root / MARKER).write_text(json.dumps({
        "format": BUNDLE_FORMAT, "device_key": "keys/device.pub", "device_rotations": ROTATIONS,
        "station_key": "keys/station.pub", "segments": []}))
    return root


def test_a_fork_in_the_bundles_rotations_fails(tmp_path: Path) -> None:
    """A → B, then A → C (validly signed by the retired A): the second is ``key_rotation_fork``
    (a failure); the honest chain's findings are unchanged."""
    a, b, c = _key(), _key(), _key()
    honest = check_contents(_bundle(tmp_path / "honest", a, [_entry(a, b), _entry(b, c)]),
                            pubkeys=[a.public_bytes])
    forked = check_contents(_bundle(tmp_path / "forked", a, [_entry(a, b), _entry(a, c)]),
                            pubkeys=[a.public_bytes])
    rotations = [(lv, code) for lv, code, _, _ in honest.findings if "rotation" in code]
    assert rotations == [("ok", "key_rotation"), ("ok", "key_rotation")]
    rotations = [(lv, code, where) for lv, code, where, _ in forked.findings
                 if "rotation" in code]
    assert rotations == [("ok", "key_rotation", "log entry 0"),
                         ("fail", "key_rotation_fork", "log entry 1")]
