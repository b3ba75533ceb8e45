"""The station is a witness of each device's log: a fork, a rollback or different bytes under
a stored segment is refused (409), raised as an alarm, and nothing stored is touched."""

from __future__ import annotations

import os

import pytest

from agent.station.api_client import StationRefused
from tests.station.harness import SimRecorder, index_rows


def _send(c, rec, seg):
    return c.finalise(rec.device_id, c.upload_file(rec.device_id, seg.media),
                      manifest=seg.manifest, entry=seg.entry, leaf_index=seg.index, log=rec.log)


def _alarms(station, device_id):
    return [r[3] for r in index_rows(station.data_dir, "alarms") if r[2] == device_id]


def _twin(rec, tmp_path, name) -> SimRecorder:
    """Another log signed with the same device key: what a cloned or reflashed card makes."""
    return SimRecorder(tmp_path / name, rec.device_id, rec.pki, key=rec.key)


@pytest.mark.parametrize("fork_size", [5, 1], ids=["fork", "rollback"])
def test_a_log_inconsistent_with_the_held_one_raises_an_alarm(station, recorder, tmp_path,
                                                              fork_size):
    """The station holds the device's checkpoint of size 3; a validly signed log that is not
    an extension of it (larger: a fork; smaller: a rollback) is refused with an alarm."""
    rec = recorder(station)
    with rec.client(station.url) as c:
        for _ in range(3):
            _send(c, rec, rec.seal(os.urandom(500)))
        held = c.log_state(rec.device_id)
        twin = _twin(rec, tmp_path, "twin")
        try:
            twin.next_seq = 100
            segs = [twin.seal(os.urandom(400)) for _ in range(fork_size)]
            with pytest.raises(StationRefused) as info:
                _send(c, twin, segs[-1])
        finally:
            twin.close()
        assert (info.value.status, info.value.code) == (409, "log-inconsistent")
        assert c.receipt(rec.device_id, segs[-1].device_seq) is None
        assert c.log_state(rec.device_id) == held
    assert "log-inconsistent" in _alarms(station, rec.device_id)
    assert "ALARM log-inconsistent" in station.stderr()


def test_other_bytes_under_a_stored_device_seq_raise_an_alarm(station, recorder):
    """A second segment claiming a stored device_seq (signed, in a consistent log): 409
    segment-conflict, alarm; the stored file and its receipt are unchanged."""
    rec = recorder(station)
    with rec.client(station.url) as c:
        first = rec.seal(os.urandom(700))
        receipt = _send(c, rec, first)
        clash = rec.seal(os.urandom(700), device_seq=first.device_seq)
        with pytest.raises(StationRefused) as info:
            _send(c, rec, clash)
        assert (info.value.status, info.value.code) == (409, "segment-conflict")
        assert c.receipt(rec.device_id, first.device_seq).to_json() == receipt.to_json()
    assert "segment-conflict" in _alarms(station, rec.device_id)
    stored = list((station.data_dir / "store" / rec.device_id).rglob("*.mp4.age"))
    assert [p.read_bytes() for p in stored] == [first.cipher]


def test_other_bytes_under_a_stored_file_name_raise_an_alarm(station, recorder):
    """A new device_seq whose media name is an already stored file: the file is never
    replaced (link, not rename), 409 segment-conflict and an alarm."""
    rec = recorder(station)
    with rec.client(station.url) as c:
        first = rec.seal(os.urandom(300))
        _send(c, rec, first)
        clash = rec.seal(os.urandom(300), name=first.media.name)
        with pytest.raises(StationRefused) as info:
            _send(c, rec, clash)
        assert (info.value.status, info.value.code) == (409, "segment-conflict")
        assert c.receipt(rec.device_id, clash.device_seq) is None
    stored = list((station.data_dir / "store" / rec.device_id).rglob("*.mp4.age"))
    assert [p.read_bytes() for p in stored] == [first.cipher]
    assert _alarms(station, rec.device_id) == ["segment-conflict"]
