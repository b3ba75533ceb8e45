"""The station's verification rules as pure functions: instant, no server, no disk.

Hypothesis: whatever bytes a client posts, parsing a finalise request either succeeds or
raises a :class:`Refused` with a 4xx status — never another exception.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.evidence.checkpoint import parse_signed_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.log import EvidenceLog, origin_for
from agent.station.index import CheckpointRow
from agent.station.ingest import Finalise, check_consistency, parse_finalise
from agent.station.refusal import Refused


def _log(tmp_path, name, key, entries):
    log = EvidenceLog(tmp_path / name, key, origin_for("BC-RULES-1"))
    for i in range(entries):
        log.append({"kind": "event", "type": "boot", "n": i, "log": name})
    return log


def _req(old: int, new: int, hashes) -> Finalise:
    return Finalise("0" * 32, b"m", b"e", 0, (), b"c", old, new, tuple(hashes))


def _held(log, size) -> CheckpointRow:
    cp = parse_signed_checkpoint(log.checkpoint())
    assert cp.checkpoint.size == size
    return CheckpointRow(size, base64.b64encode(cp.checkpoint.root).decode(), cp.text.decode())


def test_consistency_rules(tmp_path):
    """Newer and proven: advance. Older and proven prefix: accept without advancing. A proof
    for another size than held: stale view (no alarm). Same size, other root: fork (alarm)."""
    key = DeviceKey.generate(tmp_path / "k" / "device.key")
    log = _log(tmp_path, "real", key, 3)
    held = _held(log, 3)
    log.append({"kind": "event", "type": "boot", "n": 3})
    log.append({"kind": "event", "type": "boot", "n": 4})
    cp5 = parse_signed_checkpoint(log.checkpoint())
    assert check_consistency(held, _req(3, 5, log.consistency_proof(3, 5)), cp5) is True
    held5 = _held(log, 5)
    cp_old = parse_signed_checkpoint(log.checkpoint())
    assert check_consistency(held5, _req(5, 5, []), cp_old) is False
    with pytest.raises(Refused) as stale:
        check_consistency(held, _req(4, 5, log.consistency_proof(4, 5)), cp5)
    assert (stale.value.code, stale.value.alarm) == ("stale-log-state", False)
    fork = _log(tmp_path, "fork", key, 3)
    with pytest.raises(Refused) as forked:
        check_consistency(held, _req(3, 3, []), parse_signed_checkpoint(fork.checkpoint()))
    assert (forked.value.status, forked.value.code, forked.value.alarm) == (
        409, "log-inconsistent", True)
    with pytest.raises(Refused) as first:
        check_consistency(None, _req(2, 3, []), cp5)
    assert first.value.code == "stale-log-state"
    log.close()
    fork.close()


_GOOD = {"upload": "0" * 32, "manifest": "m", "entry": "e", "leaf_index": 0,
         "inclusion": [], "checkpoint": "c",
         "consistency": {"old_size": 0, "new_size": 1, "hashes": []}}


def test_malformed_finalise_bodies_name_the_part():
    """Each malformed part is a 400 naming it."""
    assert parse_finalise(json.dumps(_GOOD).encode()).upload_id == "0" * 32
    for key, value, named in (("leaf_index", -1, "leaf_index"), ("inclusion", ["x"], "inclusion"),
                              ("consistency", [], "consistency"), ("manifest", "", "manifest"),
                              ("inclusion", [base64.b64encode(b"short").decode()], "SHA-256")):
        with pytest.raises(Refused) as info:
            parse_finalise(json.dumps({**_GOOD, key: value}).encode())
        assert info.value.status == 400
        assert named in info.value.message
    with pytest.raises(Refused):
        parse_finalise(b"[" * 100_000)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(sorted(_GOOD)), inner, max_size=6), max_leaves=20).map(
    lambda d: json.dumps(d).encode())))
def test_any_body_is_parsed_or_refused(body):
    """No input makes the parser raise anything but a 4xx refusal."""
    try:
        parse_finalise(body)
    except Refused as exc:
        assert 400 <= exc.status < 500
