"""Interoperability: the device's client against a witness that is not ours (opt-in).

The witness is ``aics-witness`` 0.1.0 from PyPI (an independent C2SP tlog-witness v1.1.0 in
Python, stdlib HTTP server + SQLite, with ``aics-tlog`` for signed notes). It needs
Python >= 3.12, so it lives in its own virtualenv; point the test at its executable::

    python3.12 -m venv /tmp/aics && /tmp/aics/bin/pip install aics-witness==0.1.0
    BODYCAM_AICS_WITNESS=/tmp/aics/bin/aics-witness \\
        .venv/bin/python -m pytest -q tests/witness/test_witness_interop.py

Without that variable the test is skipped. The witness listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from witnessbench import DeviceLogBench

from agent.witness import (
    CosignatureInvalid,
    OldSizeConflict,
    ProofRejected,
    VerifierKey,
    WitnessClient,
    verified_cosignatures,
)
from agent.witness.cosignature import add_cosignatures

AICS = os.environ.get("BODYCAM_AICS_WITNESS")
pytestmark = pytest.mark.skipif(not AICS, reason="set BODYCAM_AICS_WITNESS to an aics-witness executable")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def aics(tmp_path):
    """An aics-witness trusting one device log, serving on loopback: (url, vkey, device)."""
    assert AICS
    device = DeviceLogBench(tmp_path / "dev")
    cfg = tmp_path / "aics" / "witness.json"
    cfg.parent.mkdir()
    out = subprocess.run([AICS, "init", "--config", str(cfg), "--name", "witness.aics.test/w1"],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    vkey = next(VerifierKey.parse(w) for w in out.split() if w.startswith("witness.aics.test/w1+"))
    subprocess.run([AICS, "add-log", "--config", str(cfg), "--origin", device.origin, "--vkey",
                    str(VerifierKey.for_ed25519(device.origin, device.key.public_bytes))],
                   check=True, capture_output=True, timeout=60)
    port = _free_port()
    proc = subprocess.Popen([AICS, "serve", "--config", str(cfg), "--listen", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "aics-witness did not start"
            time.sleep(0.05)
    try:
        yield url, vkey, device
    finally:
        proc.terminate()
        proc.wait(10)
        device.close()


def test_our_client_against_aics_witness(aics, tmp_path):
    """A growing log is cosigned by aics-witness; its lines verify with our code; a fork is 422."""
    url, vkey, device = aics
    client = WitnessClient(url, vkey, timeout_s=10)
    for step in (1, 3, 9):
        cp = device.grow(step)
        cosig = client.add_checkpoint(cp, device.log.consistency_proof)
        assert verified_cosignatures(add_cosignatures(cp, [cosig]), [vkey]) == {vkey.name: cosig}
    # A fresh client (known size 0) is told 13 by a 409 and proves consistency from there.
    fresh = WitnessClient(url, vkey, timeout_s=10)
    fresh.add_checkpoint(device.grow(2), device.log.consistency_proof)
    assert fresh.known_size == 15
    # The same key signing a rewritten history from entry 5 on: aics-witness refuses it.
    fork = DeviceLogBench(tmp_path / "fork", key=device.key)
    for _, data in list(device.log.entries())[:5]:
        fork.log.append(json.loads(data))
    fork.grow(12, tag="rewritten")
    forger = WitnessClient(url, vkey, timeout_s=10)
    with pytest.raises(ProofRejected):
        forger.add_checkpoint(fork.log.checkpoint(), fork.log.consistency_proof)
    fork.close()
    # A log rolled back below what the witness holds learns the witness's size.
    rolled = DeviceLogBench(tmp_path / "rolled", key=device.key)
    for _, data in list(device.log.entries())[:6]:
        rolled.log.append(json.loads(data))
    with pytest.raises(OldSizeConflict) as exc:
        WitnessClient(url, vkey).add_checkpoint(rolled.log.checkpoint(), rolled.log.consistency_proof)
    assert exc.value.witness_size == 15
    rolled.close()
    # A vkey of another witness makes aics-witness's genuine cosignature unacceptable.
    impostor = VerifierKey.for_cosigner(vkey.name, bytes(32))
    with pytest.raises(CosignatureInvalid):
        WitnessClient(url, impostor).add_checkpoint(device.grow(1), device.log.consistency_proof)


_FEEDER = r"""
import base64, json, sys
from aics_witness.feeder import WitnessClient, WitnessRejected
job = json.load(sys.stdin)
client = WitnessClient(job["url"], job["vkey"])
out = []
for step in job["steps"]:
    proofs = {int(k): [base64.b64decode(h) for h in v] for k, v in step["proofs"].items()}
    try:
        out.append({"line": client.submit(step["note"].encode(), lambda old, new: proofs[old])})
    except WitnessRejected as exc:
        out.append({"rejected": exc.status})
json.dump(out, sys.stdout)
"""


def _step(bench: DeviceLogBench) -> dict[str, object]:
    import base64

    size = bench.log.size
    return {"note": bench.log.checkpoint().decode(),
            "proofs": {old: [base64.b64encode(h).decode() for h in bench.log.consistency_proof(old)]
                       for old in range(size + 1)}}


def test_aics_client_against_our_witness(tmp_path):
    """aics-witness's own log-side client (its feeder) is cosigned by our witness, and refused
    with 422 when it submits a rewritten history; our lines verify with our vkey."""
    from witnessbench import make_witness, serve_witness

    from agent.witness import MemoryWitnessState

    assert AICS
    python = str(Path(AICS).with_name("python"))
    device = DeviceLogBench(tmp_path / "dev")
    witness = make_witness(MemoryWitnessState(), device)
    device.grow(2)
    steps = [_step(device)]
    device.grow(5)
    steps.append(_step(device))
    fork = DeviceLogBench(tmp_path / "fork", key=device.key)
    for _, data in list(device.log.entries())[:3]:
        fork.log.append(json.loads(data))
    fork.grow(9, tag="rewritten")
    steps.append(_step(fork))
    with serve_witness(witness) as url:
        job = json.dumps({"url": url, "vkey": str(witness.vkey), "steps": steps})
        res = subprocess.run([python, "-c", _FEEDER], check=False, input=job, capture_output=True, text=True,
                             timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert [("line" in o, o.get("rejected")) for o in out] == [(True, None), (True, None), (False, 422)]
    note = add_cosignatures(device.log.checkpoint(), [])
    found = verified_cosignatures(note + out[1]["line"].encode(), [witness.vkey])
    assert set(found) == {witness.vkey.name}
    fork.close()
    device.close()
