"""A key a rotation retired gets nothing signed after its rotation past the station: the device
presents the rotation with its log position (proven like a segment's), and from then on a
manifest the old key signed for a later segment, or a checkpoint it signed over a longer log, is
refused with an alarm -- at finalise and at the witness -- while the honest rotated device keeps
getting receipts and cosignatures. Without a proven position, the held checkpoint the new key
signed bounds the old key's span. Real parts: ``bodycam station run`` with mutual TLS on
loopback, the reference client, recorders with real keys and real logs."""

from __future__ import annotations

import os
from typing import Any

import pytest

from agent.evidence.checkpoint import Checkpoint, sign_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.log import origin_for
from agent.station.api_client import StationRefused
from agent.witness import SignatureRejected
from tests.station.harness import Segment, SimRecorder, StationProcess, index_rows
from tests.station.test_monitor import witness


class SignedBy:
    """The device's log, with its current checkpoint signed by another key (``key``)."""

    def __init__(self, rec: SimRecorder, key: DeviceKey) -> None:
        self.log, self.key, self.origin = rec.log, key, origin_for(rec.device_id)

    def checkpoint(self) -> bytes:
        return sign_checkpoint(Checkpoint(self.origin, self.log.size, self.log.root), self.key)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        return self.log.inclusion_proof(index, size)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return self.log.consistency_proof(old_size, new_size)


class Fixed(SignedBy):
    """The device's log, answering one given checkpoint (proofs for its size)."""

    def __init__(self, rec: SimRecorder, note: bytes) -> None:
        super().__init__(rec, rec.key)
        self.note = note

    def checkpoint(self) -> bytes:
        return self.note


def _store(c: Any, rec: SimRecorder, seg: Segment, log: Any = None) -> None:
    c.finalise(rec.device_id, c.upload_file(rec.device_id, seg.media), manifest=seg.manifest,
               entry=seg.entry, leaf_index=seg.index, log=log or rec.log)


def _refusal(fn: Any, *args: Any, **kw: Any) -> tuple[int, str]:
    with pytest.raises(StationRefused) as caught:
        fn(*args, **kw)
    return caught.value.status, caught.value.code


def _alarms(station: StationProcess, device_id: str) -> list[str]:
    return [r[3] for r in index_rows(station.data_dir, "alarms") if r[2] == device_id]


def _rotate(rec: SimRecorder) -> tuple[DeviceKey, bytes, int]:
    old = rec.key
    entry = rec.rotate()
    return old, entry, rec.log.size - 1


def test_a_retired_keys_manifest_for_a_later_segment_is_refused_once_the_position_is_proven(
        station: StationProcess, recorder: Any) -> None:
    """The rotation at entry r is presented with its position (answered with r, stored once);
    the segment the old key sealed before r and the new key's after it get receipts; a
    manifest the old key signed for a segment logged after r -- in the device's own, consistent
    log -- is refused 422 ``manifest-retired-key`` with an alarm; the next honest segment is
    stored."""
    rec = recorder(station)
    before = rec.seal(os.urandom(4_000))
    old, entry, r = _rotate(rec)
    after = rec.seal(os.urandom(4_000))
    with rec.client(station.url) as c:
        taken = c.present_rotation(rec.device_id, entry, leaf_index=r, log=rec.log)
        assert (taken["added"], taken["log_index"]) == (True, r)
        for seg in (before, after):
            _store(c, rec, seg)
        forged = rec.seal(os.urandom(4_000), key=old)
        assert forged.index > r
        assert _refusal(_store, c, rec, forged) == (422, "manifest-retired-key")
        _store(c, rec, rec.seal(os.urandom(4_000)))
        again = c.present_rotation(rec.device_id, entry, leaf_index=r, log=rec.log)
        assert (again["added"], again["log_index"]) == (False, r)
        stored = [c.receipt(rec.device_id, s) is not None for s in range(4)]
    assert stored == [True, True, False, True]
    assert _alarms(station, rec.device_id) == ["manifest-retired-key"]
    assert [row[1:3] for row in index_rows(station.data_dir, "rotation_positions")
            if row[0] == rec.device_id] == [(rec.key.fingerprint, r)]


def test_a_retired_key_gets_no_longer_log_witnessed_nor_a_segment_under_it(
        station: StationProcess, pki: Any, recorder: Any) -> None:
    """After the proven rotation at r, the old key signs the device's (consistent) log of more
    than r + 1 entries: the witness answers 403 and the finalise that carries it 422
    ``checkpoint-retired-key``, each an alarm; the new key's checkpoint of the same log is
    cosigned and its segment stored."""
    rec = recorder(station)
    old, entry, r = _rotate(rec)
    seg = rec.seal(os.urandom(3_000))
    with rec.client(station.url) as c:
        c.present_rotation(rec.device_id, entry, leaf_index=r, log=rec.log)
        retired = SignedBy(rec, old)
        with pytest.raises(SignatureRejected, match="checkpoint-retired-key"):
            witness(station, pki, rec.device_id).add_checkpoint(retired.checkpoint(),
                                                                rec.log.consistency_proof)
        assert _refusal(_store, c, rec, seg, retired) == (422, "checkpoint-retired-key")
        witness(station, pki, rec.device_id).add_checkpoint(rec.log.checkpoint(),
                                                            rec.log.consistency_proof)
        _store(c, rec, seg)
    assert _alarms(station, rec.device_id) == ["checkpoint-retired-key"] * 2


def test_a_position_that_does_not_prove_is_refused_and_nothing_is_stored(
        station: StationProcess, recorder: Any) -> None:
    """A presentation claiming another index (422 ``not-in-log``), or proving the index under
    a checkpoint the old key signed -- over more than r + 1 entries, or even its own last one
    over exactly r + 1 (422 ``bad-checkpoint``: whoever holds the old key proves no position)
    -- adds neither the key nor a position; the honest presentation then adds both."""
    rec = recorder(station)
    rec.seal(os.urandom(1_000))
    old, entry, r = _rotate(rec)
    own_last = SignedBy(rec, old).checkpoint()  # the old key over exactly r + 1 entries
    rec.seal(os.urandom(1_000))
    with rec.client(station.url) as c:
        assert _refusal(c.present_rotation, rec.device_id, entry, leaf_index=r - 1,
                        log=rec.log) == (422, "not-in-log")
        assert _refusal(c.present_rotation, rec.device_id, entry, leaf_index=r,
                        log=SignedBy(rec, old)) == (422, "bad-checkpoint")
        assert _refusal(c.present_rotation, rec.device_id, entry, leaf_index=r,
                        log=Fixed(rec, own_last)) == (422, "bad-checkpoint")
        assert not [k for k in index_rows(station.data_dir, "device_keys")
                    if k[0] == rec.device_id]
        assert c.present_rotation(rec.device_id, entry, leaf_index=r,
                                  log=rec.log)["log_index"] == r


def test_without_a_position_the_new_keys_held_checkpoint_bounds_the_old_key(
        station: StationProcess, recorder: Any) -> None:
    """A rotation presented without a position (as an older device does): the old key's
    segment sealed before the rotation is still stored after it; once the station holds a
    checkpoint the new key signed, a manifest the old key signs for an entry past it is
    refused ``manifest-retired-key``; the honest device goes on."""
    rec = recorder(station)
    before = rec.seal(os.urandom(2_000))
    old, entry, _r = _rotate(rec)
    with rec.client(station.url) as c:
        assert c.present_rotation(rec.device_id, entry)["log_index"] is None
        _store(c, rec, rec.seal(os.urandom(2_000)))  # held: the new key's checkpoint
        _store(c, rec, before)
        assert _refusal(_store, c, rec, rec.seal(os.urandom(2_000), key=old)) == (
            422, "manifest-retired-key")
        _store(c, rec, rec.seal(os.urandom(2_000)))
    assert _alarms(station, rec.device_id) == ["manifest-retired-key"]
