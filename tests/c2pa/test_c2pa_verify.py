"""``bodycam verify --c2pa-ca``: each segment's Content Credential is validated by the reference
library against the agency CA, in the same pass that checks hashes; tampering and a missing or
stray credential are findings."""

from __future__ import annotations

from pathlib import Path

from c2pabench import Bench

from agent.c2pa import credential_path
from agent.evidence.age import Identity
from agent.evidence.verify import verify
from agent.evidence.verify_cli import verify_main


def _sealed(bench: Bench, clip: Path) -> None:
    store = bench.store()
    bench.seal(store, clip.read_bytes(), seq=0)
    bench.seal(store, clip.read_bytes(), seq=0, fix=False)  # a second recording
    store.close()


def _identity(bench: Bench) -> list[Identity]:
    return Identity.from_file(bench.agency_key.read_text())


def test_valid_credentials_are_reported_per_segment(bench: Bench, clip: Path,
                                                    tmp_path: Path) -> None:
    _sealed(bench, clip)
    report = verify(bench.data, identity=_identity(bench), c2pa_anchors=bench.anchor)
    assert report.ok, report.render()
    assert sum(f.code == "c2pa" for f in report.findings) == 2
    ca = tmp_path / "ca.pem"
    ca.write_bytes(bench.anchor)
    assert verify_main([str(bench.data), "--identity", str(bench.agency_key),
                        "--c2pa-ca", str(ca)]) == 0


def test_a_forged_credential_a_missing_one_and_a_stray_one(bench: Bench, clip: Path) -> None:
    _sealed(bench, clip)
    first, second = (m for m, _ in bench.sealed)
    cred = credential_path(first)
    data = bytearray(cred.read_bytes())
    data[len(data) // 3] ^= 0x40  # inside the signed claim
    cred.write_bytes(bytes(data))
    moved = credential_path(second)
    stray = moved.with_name("BC-0001_20261127T100000.000Z_deadbeef_00009.c2pa")
    moved.rename(stray)
    report = verify(bench.data, identity=_identity(bench), c2pa_anchors=bench.anchor)
    assert {"c2pa_invalid", "c2pa_absent", "stray_credential"} <= report.codes(), report.render()
    assert not report.ok
    # Without the CA the credentials are simply not judged (and nothing else changes).
    plain = verify(bench.data, identity=_identity(bench))
    assert "c2pa_invalid" not in plain.codes() and plain.ok, plain.render()
