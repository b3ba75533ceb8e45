"""Each device key signs only within its window of log positions (agent/evidence/key_windows.py,
agent/evidence/rotation_trust.py, agent/evidence/logcheck.py).

Hypothesis: a rotation at log entry r ends the old key's window at r and starts the new key's
at r + 1; the old key still signs the checkpoint of size r + 1 (its own rotation's, all a crash
right after the announcement leaves) and nothing larger; the new key signs nothing before r + 1;
a rotation only counts under the verified checkpoint. Instant tests: real Ed25519 keys, logs
written by hand (tests/evidence/logbench.py), the exact findings read back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.evidence.key_rotation import rotation_entry
from agent.evidence.key_windows import KeyWindows
from agent.evidence.keys import DeviceKey, KeyRotation, fingerprint, rotation_message
from agent.evidence.report import Report
from agent.evidence.rotation_trust import follow_windows
from tests.evidence.logbench import UTC, LogBench, found, message
from tests.tools.receipts import make_station


@pytest.fixture
def bench(tmp_path: Path) -> LogBench:
    return LogBench(tmp_path / "data", make_station(tmp_path / "station"))


def _key() -> DeviceKey:
    return DeviceKey(Ed25519PrivateKey.generate())


def _rotation(old: DeviceKey, new: DeviceKey, *, endorse: bool = True) -> dict[str, object]:
    sig = old.sign(rotation_message(old.public_bytes, new.public_bytes)) if endorse else b""
    return rotation_entry(KeyRotation(old.public_bytes, new.public_bytes, sig), utc=UTC)


def _codes(report: Report, level: str = "fail") -> list[str]:
    return [f.code for f in report.findings if f.level == level]


# -- the windows themselves --------------------------------------------------------------------

def test_a_rotation_ends_the_old_window_at_its_entry_and_opens_the_new_one_after() -> None:
    """A → B at entry 3: A signs manifests of entries 0..3 and checkpoints of 0..4 entries;
    B signs manifests from entry 4 and checkpoints from 4 entries."""
    a, b = _key(), _key()
    entries = [{"kind": "segment"}] * 3 + [_rotation(a, b)] + [{"kind": "segment"}] * 3
    w = follow_windows(entries, [a.public_bytes], Report("t"))
    A, B = a.public_bytes, b.public_bytes
    assert [i for i in range(7) if w.signs_entry(A, i)] == [0, 1, 2, 3]
    assert [i for i in range(7) if w.signs_entry(B, i)] == [4, 5, 6]
    assert [s for s in range(8) if w.signs_checkpoint(A, s)] == [0, 1, 2, 3, 4]
    assert [s for s in range(8) if w.signs_checkpoint(B, s)] == [4, 5, 6, 7]
    assert w.in_force() == [B] and w.retired() == [A]


def test_keys_trusted_from_outside_get_their_windows_from_the_log() -> None:
    """Both keys given (``--pubkey`` twice, or the folder's own): the log's rotation still says
    where one stops and the other starts -- and an unendorsed one (an older device) ends the
    old key's window too, though it introduces no key."""
    a, b, c = _key(), _key(), _key()
    w = follow_windows([{}, _rotation(a, b)], [a.public_bytes, b.public_bytes], Report("t"))
    assert (w.for_entry(1), w.for_entry(2)) == ([a.public_bytes], [b.public_bytes])
    r = Report("t")
    w = follow_windows([{}, _rotation(a, c, endorse=False)], [a.public_bytes], r)
    assert w.for_entry(2) == [] and w.trusted() == [a.public_bytes]
    assert _codes(r, "warn") == ["key_rotation_unendorsed"]


def test_a_second_rotation_from_a_retired_key_is_a_fork_and_introduces_nothing() -> None:
    """A → B, then A → C (whoever holds the retired A): a failure; C signs nowhere; B stays."""
    a, b, c = _key(), _key(), _key()
    r = Report("t")
    w = follow_windows([_rotation(a, b), {}, _rotation(a, c)], [a.public_bytes], r)
    assert _codes(r) == ["key_rotation_fork"]
    assert c.public_bytes not in w.trusted() and w.in_force() == [b.public_bytes]
    assert f"key {a.fingerprint[:16]}, which already endorsed its successor" in \
        message(r, "key_rotation_fork")


def test_a_key_never_trusted_has_no_window() -> None:
    """An empty set of windows answers no for every key and place."""
    w = KeyWindows.starting([])
    assert not w.signs_entry(_key().public_bytes, 0) and w.for_entry(0) == []


# -- the signed checkpoint under the windows ---------------------------------------------------

def test_the_old_key_signs_the_checkpoint_over_its_own_rotation(bench: LogBench) -> None:
    """The crash window: the log ends at the rotation entry, its checkpoint signed by the old
    key (as a crash right after the announcement leaves it) -- the device's word, and the
    rotation is followed; the new key's checkpoint of the same size (set_key) is as good."""
    new = _key()
    bench.segment(0)
    bench.add(_rotation(bench.key, new))
    for signer in (bench.key, new):
        bench.write(key=signer)
        report, st = bench.check()
        assert _codes(report) == [], report.findings
        assert st.covered == 2 and st.introduced == [new.public_bytes]


def test_a_retired_key_signs_no_checkpoint_over_a_longer_log(bench: LogBench) -> None:
    """The log goes on past the rotation; a checkpoint by the retired key over it fails with
    its own code naming both keys, and nothing in the log is relied on."""
    new = _key()
    bench.segment(0)
    bench.add(_rotation(bench.key, new))
    bench.segment(1)
    bench.write(key=bench.key)
    report, st = bench.check()
    assert found(report, "fail") == [("fail", "checkpoint_retired_key", "log/checkpoint")]
    words = message(report, "checkpoint_retired_key")
    assert f"signed by key {bench.key.fingerprint[:16]}, retired by the rotation at log " \
           f"entry 1; the key valid at a log of 3 entries is {new.fingerprint[:16]}" in words
    assert st.covered == 0 and st.introduced == []
    assert _codes(report, "warn") == ["key_rotation_unsigned"]


def test_a_successor_signs_no_checkpoint_over_the_log_before_it(bench: LogBench) -> None:
    """A ``--checkpoint`` by the new key over the log before its rotation: the new key did not
    exist then (not yet valid), even when the verifier trusts both keys from outside."""
    new = _key()
    bench.segment(0)
    bench.add(_rotation(bench.key, new))
    bench.segment(1)
    bench.write(key=new)
    early = bench.checkpoint_text(1, key=new)
    report, _ = bench.check(trusted=early, keys=[bench.key.public_bytes, new.public_bytes])
    assert found(report, "fail") == [("fail", "checkpoint_key_not_yet_valid", "--checkpoint")]


def test_a_trusted_checkpoint_is_judged_by_the_same_windows(bench: LogBench) -> None:
    """``--checkpoint`` signed by the retired key over a size past its rotation fails; the
    back office's honest one from before the rotation (old key) is consistent."""
    new = _key()
    bench.segment(0)
    bench.add(_rotation(bench.key, new))
    bench.segment(1)
    bench.segment(2)
    honest_old = bench.checkpoint_text(1, key=bench.key)
    forged = bench.checkpoint_text(3, key=bench.key)
    bench.write(key=new)
    report, _ = bench.check(trusted=honest_old)
    assert _codes(report) == [] and ("ok", "consistency", "--checkpoint") in found(report)
    report, _ = bench.check(trusted=forged)
    assert found(report, "fail") == [("fail", "checkpoint_retired_key", "--checkpoint")]


def test_a_rotation_past_the_checkpoint_is_not_followed(bench: LogBench) -> None:
    """The rotation is the one entry the checkpoint does not cover (a crash between the entry
    and its checkpoint, or bytes anyone can append): a warning, the new key is not trusted
    and the old one not retired."""
    new = _key()
    bench.segment(0)
    at = bench.add(_rotation(bench.key, new))
    bench.write(covered=1)
    report, st = bench.check()
    assert _codes(report) == []
    assert ("warn", "key_rotation_unsigned", f"log entry {at}") in found(report)
    assert st.introduced == [] and st.windows.in_force() == [bench.key.public_bytes]


def test_the_checkpoint_size_decides_which_rotations_judge_its_signer(bench: LogBench) -> None:
    """A checkpoint by the new key that claims to cover the rotation but whose root is another
    log's: it fails (log_altered) and the rotation under it is followed nowhere."""
    new = _key()
    bench.segment(0)
    bench.add(_rotation(bench.key, new))
    other = [*bench.records[:1], bench.records[0]]
    bench.write(key=new, records=other)
    report, st = bench.check()
    assert "log_altered" in _codes(report)
    assert st.introduced == [] and _codes(report, "warn") == ["key_rotation_unsigned"]


def test_fingerprints_in_findings_are_the_keys_own() -> None:
    """The words name keys by the first 16 hex digits of their SHA-256 fingerprint."""
    a, b = _key(), _key()
    w = follow_windows([_rotation(a, b)], [a.public_bytes], Report("t"))
    code, words = w.outside(a.public_bytes, 5, what="manifest") or ("", "")
    assert code == "manifest_retired_key"
    assert fingerprint(a.public_bytes)[:16] in words and b.fingerprint[:16] in words
    assert w.outside(b.public_bytes, 5, what="manifest") is None
