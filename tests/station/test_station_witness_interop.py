"""Interoperability (opt-in): the station's cosignatures verify with an independent signed-note
implementation. ``aics-witness``'s log-side client (its feeder, which checks every cosignature
it receives with ``aics-tlog``) submits an enrolled device's growing log to the station over
mutual TLS, and a rewritten history is refused with 422.

It needs Python >= 3.12, so it lives in its own virtualenv (tests/witness/test_witness_interop.py
describes it)::

    python3.12 -m venv /tmp/aics && /tmp/aics/bin/pip install aics-witness==0.1.0
    BODYCAM_AICS_WITNESS=/tmp/aics/bin/aics-witness \\
        .venv/bin/python -m pytest -q tests/station/test_station_witness_interop.py
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.witness import VerifierKey, add_cosignatures, verified_cosignatures
from tests.station.harness import SimRecorder, StationProcess, bodycam

AICS = os.environ.get("BODYCAM_AICS_WITNESS")
pytestmark = pytest.mark.skipif(not AICS, reason="set BODYCAM_AICS_WITNESS to an aics-witness "
                                "executable (its virtualenv has aics-tlog)")

_FEEDER = r"""
import base64, json, ssl, sys
from aics_witness.feeder import WitnessClient, WitnessRejected
job = json.load(sys.stdin)
ctx = ssl.create_default_context(cafile=job["ca"])
ctx.load_cert_chain(job["cert"], job["key"])
client = WitnessClient(job["url"], job["vkey"], ssl_context=ctx, max_attempts=1)
out = []
for step in job["steps"]:
    proofs = {int(k): [base64.b64decode(h) for h in v] for k, v in step["proofs"].items()}
    try:
        out.append({"line": client.submit(step["note"].encode(), lambda old, new: proofs[old])})
    except WitnessRejected as exc:
        out.append({"rejected": exc.status})
json.dump(out, sys.stdout)
"""


def _step(rec: SimRecorder) -> dict[str, Any]:
    size = rec.log.size
    return {"note": rec.log.checkpoint().decode(),
            "proofs": {old: [base64.b64encode(h).decode() for h in rec.log.consistency_proof(old)]
                       for old in range(size + 1)}}


def test_aics_feeder_verifies_the_station_cosignatures(station: StationProcess, recorder: Any,
                                                       pki: Path, tmp_path: Path) -> None:
    """Two growing checkpoints are cosigned and accepted by aics-tlog's verifier under the
    station's vkey; the device key's rewritten history gets 422."""
    assert AICS
    rec: SimRecorder = recorder(station)
    vkey = json.loads(bodycam("station", "info", "--config", str(station.config), "--data-dir",
                              str(station.data_dir), "--json").stdout)["witness_vkey"]
    for _ in range(2):
        rec.seal(os.urandom(40))
    steps = [_step(rec)]
    for _ in range(3):
        rec.seal(os.urandom(40))
    steps.append(_step(rec))
    twin = SimRecorder(tmp_path / "twin", rec.device_id, pki, key=rec.key)
    for _ in range(7):
        twin.seal(os.urandom(40))
    steps.append(_step(twin))
    twin.close()
    job = json.dumps({"url": station.url + "/witness", "vkey": vkey, "steps": steps,
                      "ca": str(pki / "ca.crt"), "cert": str(pki / f"{rec.device_id}.crt"),
                      "key": str(pki / f"{rec.device_id}.key")})
    res = subprocess.run([str(Path(AICS).with_name("python")), "-c", _FEEDER], input=job,
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [("line" in o, o.get("rejected")) for o in out] == [(True, None), (True, None),
                                                               (False, 422)]
    station_vkey = VerifierKey.parse(vkey)
    note = add_cosignatures(rec.log.checkpoint(), [])
    assert set(verified_cosignatures(note + out[1]["line"].encode(), [station_vkey])) == {
        station_vkey.name}
