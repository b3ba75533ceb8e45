"""A whole simulated agent with ``[evidence] c2pa = true`` issues a trusted credential for every
segment it seals, naming where the GPS said it was."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agent.c2pa import c2pa_status, credential_path
from agent.c2pa.validity import read_credential
from agent.evidence.manifest import parse_envelope
from agent.testing import running_agent, small_config, wait_for


def test_sim_agent_credentials_every_sealed_segment(tmp_path: Path) -> None:
    """Record two segments with GPS; each decrypted segment's credential is trusted against the
    run-time test CA, names its logged evidence manifest and carries the start fix."""
    for tool in ("age", "ffmpeg"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    data = tmp_path / "data"
    cfg = small_config(gps={"source": "serial"},
                       evidence={"c2pa": True, "c2pa_test_ca": True})
    with running_agent(cfg, data) as agent:
        wait_for(lambda: agent.time.last_fix is not None and agent.time.last_fix.has_position)
        agent.controller.call("start")
        wait_for(lambda: len(agent.recorder.sealed) >= 2, timeout=30)
        agent.controller.call("stop")
        wait_for(lambda: agent.recorder.state == "standby", timeout=10)
    anchor = (data / "state" / "c2pa-test-ca" / "ca.crt").read_bytes()
    envelopes = sorted(data.glob("recordings/*/*.manifest.json"))
    assert len(envelopes) >= 2
    located = 0
    for envelope in envelopes:
        signed = parse_envelope(envelope.read_bytes())
        media = envelope.with_name(signed.manifest["file"]["name"])
        plain = tmp_path / "clerk" / media.name.removesuffix(".age")
        plain.parent.mkdir(exist_ok=True)
        subprocess.run(["age", "-d", "-i", str(data / "sim-agency.key"), "-o", str(plain),
                        str(media)], check=True, capture_output=True, timeout=60)
        shutil.copy(credential_path(media), credential_path(plain))
        assert c2pa_status(plain, anchor, evidence_manifest_sha256=signed.sha256) == (
            "valid", "signature, certificate chain and hash binding verified")
        claimed = read_credential(plain, anchor)
        assert claimed is not None
        if signed.manifest["gps"]["start"] is not None:
            meta = next(a["data"] for a in claimed["assertions"] if a["label"] == "c2pa.metadata")
            assert meta["exif:GPSLatitude"][-1] in "NS"
            located += 1
    assert located >= 1, "no segment had a fix: the location path was not exercised"
