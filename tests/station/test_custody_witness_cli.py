"""The custody log's witnesses end to end through the shipped commands: ``bodycam station run``
(mutual TLS, a real upload) with ``[[witnesses]]``, desk acts from the shell, a C2SP witness
(the repo's witness core over HTTP on loopback) that goes down and comes back, ``station info``
reporting it, and ``station check-log`` checking the result offline with the witness key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from agent.station.service import load_station_key
from agent.testing import wait_for
from tests.station.harness import StationProcess, bodycam, station_config
from tests.station.test_custody_witnessing import CustodyWitness
from tests.witness.witnessbench import serve_witness


def _info(cfg: Path, data: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(bodycam("station", "info", "--config", str(cfg),
                                             "--data-dir", str(data), "--json").stdout)
    return doc


def _desk(action: str, rid: str, cfg: Path, data: Path) -> Any:
    return bodycam("station", action, rid[:8], "--config", str(cfg), "--data-dir", str(data),
                   "--reason", "court order 17", "--by", "desk officer")


def test_desk_acts_are_cosigned_through_outages_and_check_out_offline(tmp_path, pki, recorder):
    data = tmp_path / "station"
    data.mkdir()
    key = load_station_key(data)
    station_id = f"st-{key.fingerprint_short}"  # the default id: derived from the key
    w = CustodyWitness(tmp_path, key, name="witness.test/desk", station_id=station_id)
    cfg = station_config(tmp_path / "station.toml", pki, min_free_bytes=0)
    with serve_witness(w.witness, prefix="/custody") as url:
        port = int(url.split(":")[2].split("/")[0])
        cfg.write_text(cfg.read_text() + "[witnessing]\nretry_s = 0.05\nmax_retry_s = 0.5\n"
                       f'watch_s = 0.1\n[[witnesses]]\nurl = "{url}"\nvkey = "{w.vkey}"\n'
                       "timeout_s = 5\n")
        station = StationProcess(cfg, data).start()
        try:
            rec = recorder(station)
            seg = rec.seal(b"bytes of one segment " * 50)
            with rec.client(station.url) as c:
                c.finalise(rec.device_id, c.upload_file(rec.device_id, seg.media),
                           manifest=seg.manifest, entry=seg.entry, leaf_index=seg.index,
                           log=rec.log)
            # A hold from the shell while the station runs: the station submits it.
            held = _desk("hold", rec.recording_id, cfg, data)
            assert "running station submits" in held.stderr
            wait_for(lambda: w.held() == 1, what="the hold cosigned")
            info = _info(cfg, data)["custody_log"]
            assert info["origin"] == f"bodycam-station/v1/{station_id}" and info["size"] == 1
            (status,) = info["witnesses"]
            assert status["name"] == w.vkey.name and status["url"] == url
            wait_for(lambda: _info(cfg, data)["custody_log"]["witnesses"][0]["last_success_utc"],
                     what="the station's status file")
        finally:
            assert station.stop() == 0, station.stderr()
        # With no station running, the desk command submits its own act.
        released = _desk("release", rec.recording_id, cfg, data)
        assert "cosigned 2 entries" in released.stderr and w.held() == 2

    # The witness is down: the act still happens (exit 0), the witness is behind.
    again = _desk("hold", rec.recording_id, cfg, data)
    assert "held by desk officer" in again.stdout and "not reached" in again.stderr
    (status,) = _info(cfg, data)["custody_log"]["witnesses"]
    assert status["behind"] == 1 and status["cosigned_size"] == 2
    assert "unreachable" in status["last_error"]
    # It comes back; the station, started again, submits the history written meanwhile.
    with serve_witness(w.witness, prefix="/custody", port=port):
        station = StationProcess(cfg, data).start()
        try:
            wait_for(lambda: w.held() == 3, timeout=20, what="the offline hold cosigned")
        finally:
            assert station.stop() == 0, station.stderr()
    vkey_file = tmp_path / "witness.vkey"
    vkey_file.write_text(str(w.vkey))
    copy = shutil.copytree(data / "log", tmp_path / "court-copy" / "log")
    receipt_key = _info(cfg, data)["receipt_key"]
    checked = bodycam("station", "check-log", str(copy), "--station-key", receipt_key,
                      "--witness", str(vkey_file), check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "cosigned the first 3 entries" in checked.stdout and "INTACT" in checked.stdout
    # The stock-tools recipe: the kept note is an old checkpoint the log must extend.
    (note,) = (copy / "witnessed").glob("*.note")
    proof = tmp_path / "extends.json"
    bodycam("proof", "consistency", str(note), "--data-dir", str(copy.parent), "--out",
            str(proof))
    ok = bodycam("proof", "check", str(proof), "--pubkey", receipt_key)
    assert "extends the one of 3" in ok.stdout
    w.state.close()
