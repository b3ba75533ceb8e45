"""A power cut between a segment's log leaf and its credential is repaired at the next start,
for exactly the segments the log committed to since the last boot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from c2pabench import Bench

from agent.c2pa import ContentCredentials, c2pa_status, credential_path
from agent.c2pa.backfill import issue_missing
from agent.evidence.keys import DeviceKey
from agent.evidence.store import EvidenceStore


def _store_without_credentials(bench: Bench) -> EvidenceStore:
    return EvidenceStore(bench.data, key=DeviceKey.load(bench.data / "keys" / "device.key"),
                         recipients=[bench.recipient], encrypt=True, device_id="BC-0001")


def test_missing_credentials_since_last_boot_are_issued(bench: Bench, clip: Path,
                                                        tmp_path: Path) -> None:
    """Before the last boot: left alone. After it: issued, unless the manifest on disk is not
    the logged one (then skipped, so nothing unlogged is ever signed)."""
    store = _store_without_credentials(bench)
    before, _ = bench.seal(store, clip.read_bytes(), seq=0)
    store.log_event("boot", boot_id="x", version="t", hardware="sim", recovered=0)
    cut, signed = bench.seal(store, clip.read_bytes(), seq=1)
    forged, _ = bench.seal(store, clip.read_bytes(), seq=2)
    envelope = forged.with_name(forged.name.replace(".mp4.age", ".manifest.json"))
    doc = json.loads(envelope.read_bytes())
    doc["manifest"]["officer_id"] = "O-99"
    envelope.write_text(json.dumps(doc))
    port = ContentCredentials(bench.identity)
    assert issue_missing(port, bench.data, store.log.entries()) == 1
    assert not credential_path(before).exists()
    assert not credential_path(forged).exists()
    plain = bench.decrypt(cut, tmp_path / "out")
    shutil.copy(credential_path(cut), credential_path(plain))
    assert c2pa_status(plain, bench.anchor, evidence_manifest_sha256=signed.sha256)[0] == "valid"
    assert issue_missing(port, bench.data, store.log.entries()) == 0  # idempotent
    store.close()
