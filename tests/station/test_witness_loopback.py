"""``bodycam run --with-station``: the loopback station is also the simulated device's witness
— a ``[[witnesses]]`` entry with its key and the device's agency certificate — and the device's
witness pool gets every checkpoint cosigned by it over mutual TLS."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.config import parse_config
from agent.evidence.keys import DeviceKey
from agent.evidence.log import EvidenceLog, origin_for
from agent.offload.loopback import start_loopback
from agent.witness import VerifierKey, verified_cosignatures
from agent.witnessing import start_witnessing


def test_the_loopback_station_cosigns_the_simulated_devices_log(tmp_path: Path) -> None:
    cfg = parse_config({"device": {"id": "BC-LOOP-01"}})
    data = tmp_path / "data"
    cfg2, station = start_loopback(cfg, data)
    log = EvidenceLog(data / "log", DeviceKey.load(data / "keys" / "device.key"),
                      origin_for("BC-LOOP-01"))
    pool = None
    try:
        (witness,) = cfg2.witnesses
        vkey = VerifierKey.parse(witness.vkey)
        assert witness.url == f"{station.url}/witness" and witness.certfile
        for i in range(3):
            log.append({"kind": "event", "type": "test", "n": i})
        pool = start_witnessing(cfg2.witnesses, log, data / "log")
        assert pool is not None and pool.wait_cosigned(log.size, 30), pool.status()
        (note,) = (data / "log" / "witnessed").glob("*.note")
        assert set(verified_cosignatures(note.read_bytes(), [vkey])) == {vkey.name}
    finally:
        if pool is not None:
            pool.close()
        log.close()
        assert station.stop() == 0
    # A configuration that already lists the station's witness (the same data dir started
    # again) keeps one entry.
    cfg3, station = start_loopback(dataclasses.replace(cfg, witnesses=[witness]), data)
    try:
        assert [w.vkey for w in cfg3.witnesses] == [witness.vkey]
    finally:
        assert station.stop() == 0
