"""The whole agent with a witness configured: every checkpoint goes to the witness in the
background, the cosigned note lands in log/witnessed/, status reports it, and ``bodycam verify
--witness`` confirms the history; an unreachable witness never stops recording."""

from __future__ import annotations

import socket
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from witnessbench import serve_witness

from agent.config import Config, parse_config
from agent.evidence.keys import DeviceKey
from agent.evidence.log import origin_for
from agent.evidence.verify import verify
from agent.testing import SMALL, running_agent, wait_for
from agent.witness import Cosigner, MemoryWitnessState, StaticKeyRegistry, Witness


def with_witness(url: str, vkey: str, **extra: object) -> Config:
    return parse_config({**SMALL, "witnesses": [{"url": url, "vkey": vkey, **extra}]})


def _witness_for(data: Path) -> Witness:
    """A witness that knows the (simulated) device's key, made before the agent first runs."""
    key = DeviceKey.generate(data / "keys" / "device.key")
    return Witness(cosigner=Cosigner("witness.test/w1", Ed25519PrivateKey.generate()),
                   state=MemoryWitnessState(),
                   registry=StaticKeyRegistry.of_devices({origin_for("BC-SIM-0001"):
                                                          [key.public_bytes]}))


def test_checkpoints_are_cosigned_in_the_background_and_verify_checks_them(tmp_path: Path) -> None:
    data = tmp_path / "data"
    witness = _witness_for(data)
    with serve_witness(witness) as url:
        cfg = with_witness(url, str(witness.vkey))
        with running_agent(cfg, data) as agent:
            agent.controller.call("start", timeout=10)
            wait_for(lambda: len(agent.recorder.sealed) >= 1, timeout=30)
            agent.controller.call("stop", timeout=10)
            size = agent.store.log.size
            name = witness.vkey.name
            wait_for(lambda: agent.controller.call("status", timeout=5)["witnesses"][name]
                     ["cosigned_size"] >= size, timeout=20)
    notes = list((data / "log" / "witnessed").glob("*.note"))
    assert len(notes) == 1
    report = verify(data, witnesses=[witness.vkey])
    assert report.ok, report.render()
    assert "witnessed" in {f.code for f in report.findings if f.level == "ok"}


def test_an_unreachable_witness_never_holds_up_recording(tmp_path: Path) -> None:
    data = tmp_path / "data"
    witness = _witness_for(data)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = with_witness(f"http://127.0.0.1:{port}/w", str(witness.vkey), timeout_s=1.0)
    with running_agent(cfg, data) as agent:
        agent.controller.call("start", timeout=10)
        wait_for(lambda: len(agent.recorder.sealed) >= 1, timeout=30)
        status = agent.controller.call("status", timeout=5)["witnesses"][witness.vkey.name]
        assert status["last_error"]
    report = verify(data, witnesses=[witness.vkey])
    assert report.ok and "not_witnessed" in report.codes(), report.render()
