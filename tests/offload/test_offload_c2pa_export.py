"""The whole chain with Content Credentials: a simulated recorder with ``[evidence] c2pa``
records, its uploader offloads segments and their ``.c2pa`` sidecars to ``bodycam station
run`` (mutual TLS, loopback), and the station's export joins the segments into one MP4 whose
station-signed credential has each device credential the station received as an ingredient.
The device rotates its key mid-recording, as a compromised key would make it: the bundle must
still verify with the key the station enrolled."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.c2pa import ensure_sim_identity
from agent.testing import wait_for
from tests.offload.bench import REPO, OffloadBench
from tests.offload.test_offload_c2pa import _listing, _stored_beside, _trust

DEVICE = "BC-OFF-01"


def test_the_export_joins_segments_with_the_credentials_the_station_received(
        tmp_path: Path) -> None:
    """The whole chain: a simulated recorder with ``[evidence] c2pa`` records, its uploader
    offloads segments and credentials, and ``bodycam station export`` makes a joined MP4 whose
    station-signed credential names every segment with its device credential; the bundle
    carries each credential and ``bodycam verify`` passes it."""
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    from agent.c2pa.validity import read_credential
    from agent.testing import running_agent, small_config

    b = OffloadBench(tmp_path)
    try:
        b.up()
        _, anchor = ensure_sim_identity(b.data, DEVICE)
        _trust(b, anchor)
        _, station_ca = ensure_sim_identity(b.station.root, "station")
        off = b.config()
        cfg = small_config(recording={"prerecord_s": 1, "segment_s": 2},
                           device={"id": DEVICE},
                           evidence={"c2pa": True, "c2pa_test_ca": True},
                           offload={f: getattr(off, f) for f in (
                               "enabled", "url", "cafile", "certfile", "keyfile", "retry_s",
                               "station_keys")})
        with running_agent(cfg, b.data) as agent:
            agent.controller.call("start")
            wait_for(lambda: len(agent.recorder.sealed) >= 1, timeout=30, what="a segment")
            agent.store.rotate_key()  # mid-recording: the later segments sign with the new key
            enrolled = b.key  # the key the station registered: the bundle's trust root
            sealed = len(agent.recorder.sealed)
            wait_for(lambda: len(agent.recorder.sealed) >= sealed + 1, timeout=30,
                     what="a segment signed by the new key")
            agent.controller.call("stop")
            wait_for(lambda: agent.recorder.state == "standby", timeout=10, what="standby")
            wait_for(lambda: agent.offloader.status().backlog == 0, timeout=40,
                     what="every segment receipted")
        listing = _listing(b)
        assert listing and {r["c2pa"]["state"] for r in listing.values()} == {"valid"}
        rid = next(iter(json.loads(m.read_text())["manifest"]["recording_id"]
                        for m in (b.data / "recordings").rglob("*.manifest.json")))
        out = tmp_path / "bundle"
        done = subprocess.run([sys.executable, "-m", "agent.cli", "station", "export", rid,
                               "--config", str(b.station.config), "--data-dir",
                               str(b.station.root), "--identity", str(b.data / "sim-agency.key"),
                               "--out", str(out)], capture_output=True, text=True, cwd=REPO,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        marker = json.loads((out / "BODYCAM-BUNDLE.json").read_text())
        n = len(marker["segments"])
        assert n == len([r for r in listing.values()]) >= 2
        assert marker["joined"]["c2pa"] == {"ingredients": n, "with_credentials": n}
        for seg in marker["segments"]:
            assert seg["c2pa"] and (out / seg["c2pa"]).read_bytes() == _stored_beside(
                b, Path(seg["media"]).name).read_bytes()
        manifest = read_credential(out / marker["joined"]["file"], station_ca)
        assert manifest is not None
        assert [i["title"] for i in manifest["ingredients"]] == [
            Path(s["decrypted"]).name for s in marker["segments"]]
        assert all(i.get("active_manifest") for i in manifest["ingredients"])
        # the device rotated its key mid-recording: the bundle carries the endorsed rotation,
        # and the key the station enrolled is enough to verify every segment
        assert marker["device_rotations"] == "keys/device-rotations.json"
        verified = subprocess.run([sys.executable, "-m", "agent.cli", "verify", str(out),
                                   "--pubkey", enrolled.public_b64, "--json"],
                                  capture_output=True, text=True, cwd=REPO, timeout=120,
                                  check=False)
        assert verified.returncode == 0, verified.stdout[-2000:]
        codes = {f["code"] for f in json.loads(verified.stdout)["findings"]}
        assert "key_rotation" in codes and "forged_signature" not in codes
    finally:
        b.close()
