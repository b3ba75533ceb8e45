"""The log rules of ``bodycam verify`` one at a time (agent/evidence/logcheck.py): replay, the
signed checkpoint and the back office's witnessed checkpoint.

Each test builds a log by hand (tests/evidence/logbench.py) and checks the exact findings:
level, code, where, and that the message a defence expert reads names the right entry and
numbers. Acknowledgements and evictions are in test_logcheck_receipts.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.evidence.canonical import canonical_json
from agent.evidence.keys import DeviceKey, fingerprint
from agent.evidence.log import origin_for
from agent.evidence.logcheck import MAX_CHECKPOINT, check_log
from agent.evidence.merkle import leaf_hash, root_of
from agent.evidence.report import Report
from tests.evidence.logbench import (
    DEVICE,
    LogBench,
    canonical_json_entry,
    found,
    frame,
    message,
)
from tests.tools.receipts import make_station


@pytest.fixture
def bench(tmp_path: Path) -> LogBench:
    return LogBench(tmp_path / "data", make_station(tmp_path / "station"))


# -- replay ------------------------------------------------------------------------------------

def test_no_log_is_one_failure_and_nothing_else(bench: LogBench) -> None:
    """Without entries.bin nothing else can be checked: one failure naming its place."""
    report = Report("x")
    st = check_log(None, None, [bench.key.public_bytes], report, trusted_checkpoint=None,
                   station_keys=[])
    assert found(report) == [("fail", "no_log", "log/entries.bin")]
    assert message(report, "no_log") == "no log at its defined place"
    assert st.leaves == [] and st.covered == 0 and report.log_size is None


def test_a_record_failing_its_checksum_mid_file_is_corruption(bench: LogBench) -> None:
    """A damaged record followed by more records is not a crash: the log is corrupt and
    nothing after it (checkpoint, receipts) is judged."""
    bench.segment(0)
    bench.segment(1)
    bench.write()
    path = bench.root / "log" / "entries.bin"
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    report, st = bench.check()
    assert found(report) == [("fail", "log_corrupt", "log/entries.bin")]
    assert message(report, "log_corrupt") == "log record 0 at byte 0 fails its checksum"
    assert st.leaves == [] and report.log_size is None


def test_a_torn_tail_is_a_warning_and_the_rest_is_checked(bench: LogBench) -> None:
    """A half-written final record (a crash) is ignored with a warning saying where."""
    bench.segment(0)
    bench.write()
    with open(bench.root / "log" / "entries.bin", "ab") as f:
        f.write(b"\x00\x00\x01")
    valid = (bench.root / "log" / "entries.bin").stat().st_size - 3
    report, st = bench.check()
    assert found(report, "warn") == [("warn", "log_torn_tail", "log/entries.bin")]
    assert message(report, "log_torn_tail") == (
        f"torn final record after byte {valid} ignored (crash)")
    assert st.covered == 1 and report.ok


def test_unreadable_and_malformed_entries_are_named_and_not_used(bench: LogBench) -> None:
    """An entry that is not canonical JSON, one nested beyond reason and one of the wrong
    shape are each a failure naming the entry; they stay as empty places in the log."""
    bench.segment(0)
    bench.add(b"\xff\xfe{}")
    bench.add({"kind": "segment", "device_seq": "x"})
    bench.add(b"[" * 100_000 + b"]" * 100_000)
    bench.write()
    report, st = bench.check()
    assert found(report, "fail") == [("fail", "log_entry_unreadable", "log entry 1"),
                                     ("fail", "log_entry_malformed", "log entry 2"),
                                     ("fail", "log_entry_unreadable", "log entry 3")]
    assert {f.message for f in report.failures if f.code == "log_entry_unreadable"} == {
        "not canonical JSON"}
    assert message(report, "log_entry_malformed") == (
        "segment entry field 'device_seq' has the wrong type or value ('x')")
    assert st.entries[1:] == [{}, {}, {}] and st.entries[0]["device_seq"] == 0
    assert [i for i, _ in st.trusted()] == [0]


def test_log_size_and_root_are_reported(bench: LogBench) -> None:
    """The report states how many entries the log holds and their Merkle root."""
    for seq in range(3):
        bench.segment(seq)
    bench.write()
    report, st = bench.check()
    assert report.log_size == 3 and st.leaves == [leaf_hash(r) for r in bench.records]
    assert report.log_root == root_of(st.leaves).hex()


# -- the signed checkpoint ---------------------------------------------------------------------

def test_a_checkpoint_covering_everything_is_the_device_word(bench: LogBench) -> None:
    """Signature and root check out: two OK findings naming the key and the size; every
    entry is trusted and the device id comes from the origin."""
    bench.segment(0)
    bench.segment(1)
    bench.write()
    report, st = bench.check()
    assert found(report) == [("ok", "checkpoint_signature", "log/checkpoint"),
                             ("ok", "log_root", "log/checkpoint")]
    assert message(report, "checkpoint_signature") == (
        f"signature verifies (key {fingerprint(bench.key.public_bytes)[:16]})")
    assert message(report, "log_root") == "log of 2 entries replays to the signed root"
    assert st.covered == 2 and report.checkpoint_size == 2
    assert st.device_id == report.device_id == DEVICE


def test_missing_checkpoint_trusts_nothing(bench: LogBench) -> None:
    """Without a checkpoint no entry is the device's word: even a proper eviction excuses
    nothing, and the trusted checkpoint cannot be compared."""
    bench.segment(0)
    a = bench.ack(0)
    e = bench.evict(0, a)
    bench.write()
    report, st = bench.check(checkpoint=False, trusted=bench.checkpoint_text())
    assert found(report) == [("fail", "no_checkpoint", "log/checkpoint"),
                             ("fail", "eviction_unsigned", f"log entry {e}")]
    assert message(report, "no_checkpoint") == "signed checkpoint missing"
    assert st.covered == 0 and st.device_id is None and st.evicted == set()


def test_checkpoint_too_large_to_be_one_is_not_read(bench: LogBench) -> None:
    """A checkpoint file over the limit is refused unread, naming its size."""
    bench.segment(0)
    bench.write()
    (bench.root / "log" / "checkpoint").write_bytes(b"x" * (MAX_CHECKPOINT + 1))
    report, _ = bench.check()
    assert found(report) == [("fail", "checkpoint_signature", "log/checkpoint")]
    assert message(report, "checkpoint_signature") == (
        f"{MAX_CHECKPOINT + 1} bytes, more than the 16384 such a file can hold")
    (bench.root / "log" / "checkpoint").write_bytes(b"x" * MAX_CHECKPOINT)
    report, _ = bench.check()
    assert message(report, "checkpoint_signature").startswith("checkpoint is not a signed note")


def test_checkpoint_signed_by_another_key_trusts_nothing(bench: LogBench) -> None:
    """A checkpoint the registered key did not sign is a failure, and a trusted checkpoint
    given on the command line is then not compared with it."""
    bench.segment(0)
    other = DeviceKey.generate(bench.root / "other.key")
    bench.write(key=other)
    report, st = bench.check(trusted=bench.checkpoint_text())
    assert found(report) == [("fail", "checkpoint_signature", "log/checkpoint")]
    assert "does not verify with any trusted key" in message(report, "checkpoint_signature")
    assert st.covered == 0 and report.checkpoint_size is None


@pytest.mark.parametrize("origin", ["bodycam/v2/BC-0001", "bodycam/v1/", "BC-0001",
                                    "elsewhere/" + "x" * 120 + "/BC-0001"])
def test_checkpoint_for_something_other_than_a_device_log(bench: LogBench, origin: str) -> None:
    """A validly signed checkpoint whose origin is not bodycam/v1/<device> vouches for nothing;
    the message quotes the origin (cut at 80 characters)."""
    bench.segment(0)
    bench.write(origin=origin)
    report, st = bench.check(trusted=bench.checkpoint_text(origin=origin))
    assert found(report) == [("ok", "checkpoint_signature", "log/checkpoint"),
                             ("fail", "checkpoint_origin", "log/checkpoint")]
    assert message(report, "checkpoint_origin") == (
        f"origin {origin[:80]!r} is not a device log origin (bodycam/v1/<device>)")
    assert st.covered == 0 and st.device_id is None and report.device_id is None


def test_checkpoint_beyond_the_log_means_entries_were_deleted(bench: LogBench) -> None:
    """A checkpoint over 5 entries beside a log of 3: the message names the lost entries."""
    for seq in range(5):
        bench.segment(seq)
    bench.write()
    del bench.records[3:]
    (bench.root / "log" / "entries.bin").write_bytes(b"".join(map(frame, bench.records)))
    report, st = bench.check()
    assert found(report, "fail") == [("fail", "log_truncated", "log/checkpoint")]
    assert message(report, "log_truncated") == (
        "checkpoint covers 5 entries but the log holds 3: entries 3..4 were deleted")
    assert st.covered == 0 and report.checkpoint_size == 5 and report.device_id == DEVICE


def test_altered_entry_under_the_checkpoint(bench: LogBench) -> None:
    """An entry changed (and re-framed) under the signed root is named with the size."""
    for seq in range(3):
        bench.segment(seq)
    signed = bench.checkpoint_text()
    bench.records[1] = canonical_json({**canonical_json_entry(bench.records[1]), "seq": 9})
    bench.write()
    (bench.root / "log" / "checkpoint").write_bytes(signed)
    report, st = bench.check()
    assert found(report, "fail") == [("fail", "log_altered", "log/checkpoint")]
    assert message(report, "log_altered") == (
        "the first 3 log entries do not hash to the signed root")
    assert st.covered == 0


def test_one_entry_past_the_checkpoint_is_a_warning_and_not_relied_on(bench: LogBench) -> None:
    """A crash between append and re-signing leaves one entry uncovered: a warning naming
    it, the covered part trusted."""
    for seq in range(3):
        bench.segment(seq)
    bench.write(covered=2)
    report, st = bench.check()
    assert found(report) == [("ok", "checkpoint_signature", "log/checkpoint"),
                             ("warn", "entry_unsigned", "log entry 2")]
    assert message(report, "entry_unsigned") == (
        "last entry not covered by a signed checkpoint (a crash during append, or added "
        "without the device key): it is not relied on")
    assert st.covered == 2 and [i for i, _ in st.trusted()] == [0, 1]


def test_two_entries_past_the_checkpoint_is_a_stale_checkpoint(bench: LogBench) -> None:
    """More than one uncovered entry is not a crash: an old checkpoint was put back."""
    for seq in range(4):
        bench.segment(seq)
    bench.write(covered=2)
    report, st = bench.check()
    assert found(report, "fail") == [("fail", "checkpoint_stale", "log/checkpoint")]
    assert message(report, "checkpoint_stale") == (
        "checkpoint covers 2 of 4 entries: an old checkpoint was put back, or entries were "
        "added without the device key")
    assert "entry_unsigned" not in report.codes()
    assert st.covered == 2


# -- the trusted (back-office) checkpoint ------------------------------------------------------

def test_log_extending_the_witnessed_checkpoint(bench: LogBench) -> None:
    """The log grew since the back office saw 2 entries: consistent, naming both sizes, also
    with one crash-uncovered entry at the end."""
    for seq in range(4):
        bench.segment(seq)
    trusted = bench.checkpoint_text(2)
    bench.write(covered=3)
    report, _ = bench.check(trusted=trusted)
    assert found(report, "ok")[-1] == ("ok", "consistency", "--checkpoint")
    assert message(report, "consistency") == "log extends the witnessed checkpoint (2 → 3 entries)"
    assert ("ok", "checkpoint_signature", "--checkpoint") in found(report)
    assert report.ok


def test_trusted_checkpoint_with_a_bad_signature(bench: LogBench) -> None:
    """A --checkpoint the device key did not sign is itself a failure, compared with nothing."""
    bench.segment(0)
    bench.write()
    other = DeviceKey.generate(bench.root / "other.key")
    report, _ = bench.check(trusted=bench.checkpoint_text(key=other))
    assert ("fail", "checkpoint_signature", "--checkpoint") in found(report)
    assert {"consistency", "fork", "rollback"}.isdisjoint(f.code for f in report.findings)


@pytest.mark.parametrize("origin", [origin_for("BC-0002"), origin_for("BC-" + "7" * 90)])
def test_trusted_checkpoint_of_another_device(bench: LogBench, origin: str) -> None:
    """A witnessed checkpoint of another device's log is named as such (its origin cut at 80
    characters)."""
    bench.segment(0)
    bench.write()
    report, _ = bench.check(trusted=bench.checkpoint_text(origin=origin))
    assert found(report, "fail") == [("fail", "checkpoint_other_log", "--checkpoint")]
    assert message(report, "checkpoint_other_log") == (
        f"trusted checkpoint is for {origin[:80]}, not this device's log")


@pytest.mark.parametrize(("entries", "covered", "witnessed"), [(3, 3, 4), (4, 3, 4)])
def test_rollback_below_what_the_back_office_witnessed(bench: LogBench, entries: int,
                                                       covered: int, witnessed: int) -> None:
    """The back office saw 4 entries; a log that holds fewer, or whose signed checkpoint
    covers fewer, was rolled back -- the message gives all three numbers."""
    for seq in range(4):
        bench.segment(seq)
    trusted = bench.checkpoint_text(witnessed)
    del bench.records[entries:]
    bench.write(covered=covered)
    report, _ = bench.check(trusted=trusted)
    assert ("fail", "rollback", "--checkpoint") in found(report)
    assert message(report, "rollback") == (
        f"back office already witnessed {witnessed} entries; this log holds {entries} "
        f"(signed checkpoint {covered}): rolled back or replayed old state")


def test_same_size_as_witnessed_is_no_rollback(bench: LogBench) -> None:
    """Equal sizes and roots: consistent, not a rollback."""
    for seq in range(3):
        bench.segment(seq)
    bench.write()
    report, _ = bench.check(trusted=bench.checkpoint_text())
    assert report.ok and "consistency" in {f.code for f in report.findings}
    assert message(report, "consistency") == "log extends the witnessed checkpoint (3 → 3 entries)"


def test_a_log_rewritten_since_the_witness_is_a_fork(bench: LogBench) -> None:
    """Different entries under a re-signed checkpoint: not an extension of what was seen."""
    for seq in range(3):
        bench.segment(seq)
    trusted = bench.checkpoint_text(2)
    bench.records[0] = canonical_json({**canonical_json_entry(bench.records[0]), "seq": 7})
    bench.write()
    report, _ = bench.check(trusted=trusted)
    assert found(report, "fail") == [("fail", "fork", "--checkpoint")]
    assert message(report, "fork") == (
        "log is not an extension of the witnessed checkpoint of size 2")
