"""``bodycam verify --witness``: a history a witness cosigned cannot be rewritten unnoticed,
even by the device's own key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from evbench import AgencyKey, open_store, write_recording

from agent.evidence.checkpoint import parse_signed_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.log import replay_entries
from agent.evidence.merkle import consistency_proof, leaf_hash
from agent.evidence.verify import verify
from agent.evidence.verify_cli import verify_main
from agent.witness import (
    Cosigner,
    MemoryWitnessState,
    StaticKeyRegistry,
    Witness,
    WitnessRefusal,
    add_cosignatures,
)
from agent.witness.protocol import AddCheckpointRequest


def record(data_dir: Path, agency: AgencyKey, segments: int) -> None:
    store = open_store(data_dir, agency)
    write_recording(store, segments=segments, size=3_000)
    store.close()


def leaves(data_dir: Path) -> list[bytes]:
    return [leaf_hash(r) for r in replay_entries(
        (data_dir / "log" / "entries.bin").read_bytes()).records]


def cosign(witness: Witness, data_dir: Path, old_size: int) -> bytes:
    """Ask the witness to cosign the folder's current checkpoint; the cosigned note."""
    text = (data_dir / "log" / "checkpoint").read_bytes()
    proof = tuple(consistency_proof(leaves(data_dir), old_size)) if old_size else ()
    req = AddCheckpointRequest(old_size, proof, parse_signed_checkpoint(text))
    return add_cosignatures(text, witness.add_checkpoint(req))


@pytest.fixture
def witnessed(data_dir: Path, agency: AgencyKey) -> tuple[Path, Witness, bytes]:
    """A device folder whose first three segments a witness cosigned (note kept in the log)."""
    key = DeviceKey.load(data_dir / "keys" / "device.key")
    witness = Witness(cosigner=Cosigner("witness.example/w1", Ed25519PrivateKey.generate()),
                      state=MemoryWitnessState(),
                      registry=StaticKeyRegistry.of_devices({"bodycam/v1/BC-0001":
                                                             [key.public_bytes]}))
    record(data_dir, agency, 3)
    note = cosign(witness, data_dir, 0)
    (data_dir / "log" / "witnessed").mkdir()
    (data_dir / "log" / "witnessed" / "w1.note").write_bytes(note)
    return data_dir, witness, note


def rewrite_history(data_dir: Path, agency: AgencyKey, segments: int = 4) -> None:
    """What the device key alone can do: throw the log away and sign a new one."""
    (data_dir / "log" / "entries.bin").unlink()
    (data_dir / "log" / "checkpoint").unlink()
    shutil.rmtree(data_dir / "recordings")
    record(data_dir, agency, segments)


def test_a_witnessed_log_that_grew_verifies(witnessed: tuple[Path, Witness, bytes],
                                            agency: AgencyKey) -> None:
    data_dir, witness, _ = witnessed
    record(data_dir, agency, 2)
    report = verify(data_dir, witnesses=[witness.vkey])
    assert report.ok, report.render()
    assert any(f.code == "witnessed" and "first 3 entries" in f.message for f in report.findings)


def test_rewritten_history_is_refused_by_the_witness_and_caught_offline(
        witnessed: tuple[Path, Witness, bytes], agency: AgencyKey, tmp_path: Path) -> None:
    data_dir, witness, note = witnessed
    rewrite_history(data_dir, agency)
    plain = verify(data_dir)
    assert plain.ok, plain.render()  # the device key alone makes the new history look fine
    with pytest.raises(WitnessRefusal):  # …but the witness will not cosign it
        cosign(witness, data_dir, 3)
    report = verify(data_dir, witnesses=[witness.vkey])
    assert "witnessed_fork" in report.codes() and not report.ok, report.render()
    # Deleting the kept note only hides it from the folder; the back office's copy still tells.
    shutil.rmtree(data_dir / "log" / "witnessed")
    assert "not_witnessed" in verify(data_dir, witnesses=[witness.vkey]).codes()
    held = tmp_path / "cosigned.note"
    held.write_bytes(note)
    vkey = tmp_path / "w1.vkey"
    vkey.write_text(str(witness.vkey))
    assert verify_main([str(data_dir), "--checkpoint", str(held), "--witness", str(vkey)]) == 1


def test_a_rolled_back_log_and_a_forged_cosignature(witnessed: tuple[Path, Witness, bytes],
                                                    agency: AgencyKey) -> None:
    data_dir, witness, note = witnessed
    rewrite_history(data_dir, agency, segments=2)  # fewer entries than the 3 cosigned
    report = verify(data_dir, witnesses=[witness.vkey])
    assert "witnessed_rollback" in report.codes() and not report.ok, report.render()
    forged = bytearray(note)
    forged[-10] ^= 1  # inside the witness's signature
    (data_dir / "log" / "witnessed" / "w1.note").write_bytes(bytes(forged))
    assert "cosignature_invalid" in verify(data_dir, witnesses=[witness.vkey]).codes()


def test_a_bad_witness_key_is_a_usage_error(witnessed: tuple[Path, Witness, bytes]) -> None:
    data_dir, _, _ = witnessed
    assert verify_main([str(data_dir), "--witness", "not+a+key"]) == 2
