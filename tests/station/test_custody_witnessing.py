"""The station's custody log witnessed: real C2SP witnesses (the repo's witness core over
aiohttp on loopback, durable SQLite state) cosign every custody act the station logs; a custody
history rewritten after a cosignature is refused by the witness and named by the offline check;
a witness that is down delays its cosignature, never an act."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.evidence.keys import DeviceKey
from agent.station.custodycheck import check_custody_log
from agent.station.custodywitness import custody_witness_status
from agent.station.service import StationService, load_station_key
from agent.station.station_config import parse_station_config
from agent.station.stationlog import StationLog, station_log_origin
from agent.testing import wait_for
from agent.witness import (
    Cosigner,
    SqliteWitnessState,
    StaticKeyRegistry,
    VerifierKey,
    Witness,
    verified_cosignatures,
)
from hw.errors import ConfigError
from tests.station.harness import bodycam
from tests.witness.witnessbench import serve_witness

STATION = "ST-WIT-1"
FAST = {"retry_s": 0.05, "max_retry_s": 0.2, "watch_s": 0.05}


class CustodyWitness:
    """A tlog-witness that keeps the station's custody log, its state in a SQLite file."""

    def __init__(self, root: Path, station_key: DeviceKey, name: str = "witness.test/custody",
                 station_id: str = STATION) -> None:
        self.origin = origin = station_log_origin(station_id)
        self.state = SqliteWitnessState(root / f"{name.replace('/', '_')}.sqlite")
        cosigner = Cosigner(name, Ed25519PrivateKey.generate())
        self.vkey: VerifierKey = cosigner.vkey
        self.witness = Witness(cosigner=cosigner, state=self.state,
                               registry=StaticKeyRegistry.of_devices(
                                   {origin: [station_key.public_bytes]}))

    def held(self) -> int:
        head = self.state.get(self.origin)
        return -1 if head is None else head[0]


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[tuple[Path, DeviceKey, CustodyWitness]]:
    data = tmp_path / "station"
    data.mkdir()
    key = load_station_key(data)
    w = CustodyWitness(tmp_path, key)
    yield data, key, w
    w.state.close()


def _config(url: str, vkey: VerifierKey, **extra: Any) -> Any:
    return parse_station_config({"station": {"id": STATION, "insecure_http": True},
                                 "witnessing": FAST, **extra,
                                 "witnesses": [{"url": url, "vkey": str(vkey), "timeout_s": 2}]})


def _hold(svc: StationService, n: int) -> int:
    return svc.custody_log.append("hold", {"recording_id": f"{n:032x}", "device_id": "BC-1",
                                           "reason": "court order", "by": "desk", "utc": "x"})


def _status(data: Path, svc: StationService) -> dict[str, Any]:
    (only,) = custody_witness_status(data, svc.cfg.witnesses)
    return only


def test_custody_acts_are_cosigned_and_a_rewritten_history_is_refused_and_named(bench):
    data, key, w = bench
    with serve_witness(w.witness) as url:
        cfg = _config(url, w.vkey)
        offline = StationService.open(cfg, data)
        _hold(offline, 0)  # logged while no station process ran
        offline.close()
        svc = StationService.open(cfg, data)
        try:
            svc.start_witnessing()  # at start: the history written offline
            assert svc.custody_witnessing is not None
            assert svc.custody_witnessing.wait_cosigned(1, 10), svc.custody_witnessing.status()
            for n in (1, 2):  # in process: each act queued after it is logged
                _hold(svc, n)
            assert svc.custody_witnessing.wait_cosigned(3, 10), svc.custody_witnessing.status()
            assert w.held() == 3
            wait_for(lambda: _status(data, svc)["last_success_utc"], what="status file")
            status = _status(data, svc)
            assert status["cosigned_size"] == 3 and status["behind"] == 0
            assert status["last_error"] is None and status["name"] == w.vkey.name
        finally:
            svc.close()
        (note,) = (data / "log" / "witnessed").glob("*.note")
        assert set(verified_cosignatures(note.read_bytes(), [w.vkey])) == {w.vkey.name}
        report = check_custody_log(data, [key.public_bytes], [w.vkey])
        assert report.ok and "witnessed" in {f.code for f in report.findings}, report.render()

        # Whoever holds the station key rewrites the custody log: the second hold erased, a
        # longer history signed in its place. Its own signature is fine...
        for name in ("entries.bin", "checkpoint"):
            (data / "log" / name).unlink()
        rewritten = StationLog(data, STATION, key)
        for n in (0, 2, 3, 4):
            rewritten.append("hold", {"recording_id": f"{n:032x}", "device_id": "BC-1",
                                      "reason": "court order", "by": "desk", "utc": "x"})
        svc = StationService.open(cfg, data)
        try:
            svc.start_witnessing()
            # ...but the witness that cosigned 3 entries refuses it: not an extension (422).
            wait_for(lambda: "ProofRejected" in str(_status(data, svc)["last_error"]),
                     what="the witness's refusal")
            assert w.held() == 3
        finally:
            svc.close()
    report = check_custody_log(data, [key.public_bytes], [w.vkey])
    assert not report.ok
    fork = [f for f in report.failures if f.code == "witnessed_fork"]
    assert fork and w.vkey.name in fork[0].message, report.render()
    checked = bodycam("station", "check-log", str(data / "log"), "--station-key",
                      key.public_b64, "--witness", str(w.vkey), "--json", check=False)
    assert checked.returncode == 1, checked.stderr
    assert "witnessed_fork" in {f["code"] for f in json.loads(checked.stdout)["findings"]}


def test_a_witness_that_is_down_delays_the_cosignature_not_the_act(bench):
    data, _key, w = bench
    with serve_witness(w.witness) as url:  # a port that will answer later
        pass
    port = int(url.split(":")[2].split("/")[0])
    svc = StationService.open(_config(url, w.vkey), data)
    try:
        svc.start_witnessing()
        assert _hold(svc, 0) == 0 and _hold(svc, 1) == 1  # acts happen, witness or not
        wait_for(lambda: _status(data, svc)["failures"] >= 2, what="retries while down")
        assert "unreachable" in _status(data, svc)["last_error"]
        assert _status(data, svc)["behind"] == 2 and w.held() == -1
        with serve_witness(w.witness, port=port):
            assert svc.custody_witnessing is not None
            assert svc.custody_witnessing.wait_cosigned(2, 15), svc.custody_witnessing.status()
            assert w.held() == 2
            wait_for(lambda: _status(data, svc)["cosigned_size"] == 2, what="status")
    finally:
        svc.close()


def test_only_one_process_submits_and_the_others_acts_reach_the_witness(bench):
    """Two station processes on one data directory: one holds the submitter's lock; an act
    logged by the other is picked up from the checkpoint file and cosigned; when the holder
    stops, the other takes over."""
    data, _key, w = bench
    with serve_witness(w.witness) as url:
        cfg = _config(url, w.vkey)
        first, second = StationService.open(cfg, data), StationService.open(cfg, data)
        try:
            a, b = first.start_witnessing(), None
            assert a is not None and a.wait_cosigned(-1, 10) is True
            b = second.start_witnessing()
            assert b is not None and not b.leading
            _hold(second, 0)  # the second process's act, the first submits it
            assert a.wait_cosigned(1, 10), a.status()
            a.close()  # the first process stops submitting: the lock passes on
            wait_for(lambda: b.leading, what="the second process taking over")
            _hold(first, 1)  # written by a process that no longer submits
            assert b.wait_cosigned(2, 10), b.status()
            assert w.held() == 2
        finally:
            first.close()
            second.close()


def test_witness_configuration_is_checked_with_the_devices_rules():
    ok = Cosigner("w.example/1", Ed25519PrivateKey.generate()).vkey
    with pytest.raises(ConfigError, match=r"witnesses\[0\]\.vkey"):
        _config("http://127.0.0.1:1/w", VerifierKey.for_ed25519("x", b"\x01" * 32))
    with pytest.raises(ConfigError, match=r"witnesses\[1\]"):
        parse_station_config({"station": {"insecure_http": True}, "witnesses": [
            {"url": "http://a/w", "vkey": str(ok)}, {"url": "http://b/w", "vkey": str(ok)}]})
    with pytest.raises(ConfigError, match=r"witnesses\[0\]\.url"):
        parse_station_config({"station": {"insecure_http": True},
                              "witnesses": [{"url": "ftp://a", "vkey": str(ok)}]})
    with pytest.raises(ConfigError, match=r"witnessing\.max_retry_s"):
        _config("http://a/w", ok, witnessing={"retry_s": 10, "max_retry_s": 1})
