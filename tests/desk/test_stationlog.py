"""The station's custody log on its own: entries survive reopening and prove inclusion under
the station key's signed checkpoint; a log another process keeps locked is an error naming
it, after a bounded wait, never a hang or a lost entry."""

from __future__ import annotations

import fcntl
import json
import os
import time

import pytest

from agent.evidence.keys import DeviceKey
from agent.evidence.log import replay_entries
from agent.evidence.proof import check_proof, inclusion
from agent.station import stationlog
from agent.station.stationlog import StationLog, station_log_origin
from hw.errors import EvidenceError


def test_entries_are_durable_and_proven_under_the_station_key(tmp_path):
    key = DeviceKey.generate(tmp_path / "keys" / "station.key")
    first = StationLog(tmp_path, "ST-1", key).append("hold", {"recording_id": "ab", "by": "x"})
    second = StationLog(tmp_path, "ST-1", key).append("release", {"recording_id": "ab"})
    assert (first, second) == (0, 1)
    records = replay_entries((tmp_path / "log" / "entries.bin").read_bytes()).records
    assert [json.loads(r)["kind"] for r in records] == ["hold", "release"]
    assert json.loads(records[0])["station_id"] == "ST-1"
    doc = inclusion(tmp_path, "#0")
    assert doc["origin"] == station_log_origin("ST-1") == "bodycam-station/v1/ST-1"
    assert "entry #0 is in the log" in check_proof(doc, [key.public_bytes])


def test_a_locked_log_is_a_clear_error_after_a_bounded_wait(tmp_path, monkeypatch):
    key = DeviceKey.generate(tmp_path / "keys" / "station.key")
    monkeypatch.setattr(stationlog, "LOCK_WAIT_S", 0.2)
    fd = os.open(tmp_path / "log.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        start = time.monotonic()
        with pytest.raises(EvidenceError, match="stayed locked"):
            StationLog(tmp_path, "ST-1", key).append("hold", {"recording_id": "ab"})
        assert time.monotonic() - start < 5
    finally:
        os.close(fd)
    assert StationLog(tmp_path, "ST-1", key).append("hold", {"recording_id": "ab"}) == 0


def test_an_unusable_station_id_is_refused():
    with pytest.raises(ValueError):
        station_log_origin("a/b")
