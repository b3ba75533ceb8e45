"""Device key handling and signed checkpoints, checked with openssl as an independent Ed25519."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
from pathlib import Path

import pytest
from evbench import need

from agent.evidence.checkpoint import Checkpoint, key_id, parse_signed_checkpoint, sign_checkpoint
from agent.evidence.keys import DeviceKey, load_public_keys
from agent.evidence.keys_cli import keys_init_main
from hw.errors import EvidenceError, KeyMissing, VerificationError


def test_generate_creates_0600_key_and_refuses_overwrite(tmp_path: Path) -> None:
    """The private key is 0600 from creation; a second generate does not clobber it."""
    path = tmp_path / "keys" / "device.key"
    key = DeviceKey.generate(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DeviceKey.load(path).public_bytes == key.public_bytes
    with pytest.raises(EvidenceError, match="already exists"):
        DeviceKey.generate(path)
    assert DeviceKey.load(path).public_bytes == key.public_bytes


def test_load_refuses_missing_or_exposed_key(tmp_path: Path) -> None:
    """No key → KeyMissing telling the operator what to run; group-readable → refused."""
    with pytest.raises(KeyMissing, match="bodycam keys init"):
        DeviceKey.load(tmp_path / "device.key")
    path = tmp_path / "device.key"
    DeviceKey.generate(path)
    os.chmod(path, 0o640)
    with pytest.raises(EvidenceError, match="0640"):
        DeviceKey.load(path)


def test_rotation_keeps_old_public_key(tmp_path: Path) -> None:
    """After rotation both keys are known to verifiers; the event names both fingerprints."""
    path = tmp_path / "keys" / "device.key"
    old = DeviceKey.generate(path)
    new, rotation = DeviceKey.rotate(path)
    assert new.public_bytes != old.public_bytes
    known = load_public_keys(path.parent)
    assert set(known) == {old.fingerprint, new.fingerprint}
    fields = rotation.event_fields()
    assert fields["old_fingerprint"] == old.fingerprint
    assert fields["new_key"] == new.public_b64


def test_keys_init_cli_prints_public_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    """`bodycam keys init` prints the public key and fingerprint and no private material."""
    assert keys_init_main(["--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    key = DeviceKey.load(tmp_path / "keys" / "device.key")
    assert key.fingerprint in out and key.public_b64 in out
    assert "PRIVATE" not in out
    assert keys_init_main(["--data-dir", str(tmp_path)]) == 1  # exists: refuse


def test_checkpoint_round_trip_and_key_id(tmp_path: Path) -> None:
    """Signed note format: body, blank line, em-dash line with the 4-byte key id."""
    key = DeviceKey.generate(tmp_path / "k")
    cp = Checkpoint("bodycam/v1/BC-1", 42, bytes(range(32)))
    text = sign_checkpoint(cp, key)
    lines = text.decode().split("\n")
    assert lines[:4] == ["bodycam/v1/BC-1", "42", base64.b64encode(bytes(range(32))).decode(), ""]
    assert lines[4].startswith("\u2014 bodycam/v1/BC-1 ")
    blob = base64.b64decode(lines[4].split(" ")[2])
    assert blob[:4] == key_id("bodycam/v1/BC-1", key.public_bytes)
    parsed = parse_signed_checkpoint(text)
    assert parsed.checkpoint == cp
    assert parsed.verify([key.public_bytes]) == key.public_bytes
    with pytest.raises(VerificationError):
        parsed.verify([DeviceKey.generate(tmp_path / "other").public_bytes])
    forged = text.replace(b"\n42\n", b"\n43\n")
    with pytest.raises(VerificationError):
        parse_signed_checkpoint(forged).verify([key.public_bytes])


def test_openssl_verifies_our_checkpoint_signature(tmp_path: Path) -> None:
    """An independent Ed25519 (openssl pkeyutl -rawin) accepts our note signature."""
    need("openssl")
    key = DeviceKey.generate(tmp_path / "device.key")
    text = sign_checkpoint(Checkpoint("bodycam/v1/BC-9", 7, os.urandom(32)), key)
    body, sigline = text.decode().split("\n\n")
    (tmp_path / "body").write_bytes(body.encode() + b"\n")
    (tmp_path / "sig").write_bytes(base64.b64decode(sigline.split(" ")[2])[4:])

    def openssl_verify() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["openssl", "pkeyutl", "-verify", "-rawin", "-pubin",
             "-inkey", str(tmp_path / "device.pub"), "-in", str(tmp_path / "body"),
             "-sigfile", str(tmp_path / "sig")], capture_output=True, timeout=30, check=False)

    ok = openssl_verify()
    assert ok.returncode == 0, ok.stderr.decode()
    (tmp_path / "body").write_bytes(body.replace("\n7\n", "\n8\n").encode() + b"\n")
    assert openssl_verify().returncode != 0
