"""The log rules of ``bodycam verify`` one at a time (agent/evidence/logcheck.py).

Each test builds a log by hand -- framed entries and a checkpoint signed with a real device
key, receipts signed with a real station key -- the way an honest device or an attacker with
write access would, and checks the exact findings: level, code, where, and that the message a
defence expert reads names the right entry, segment and numbers.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from agent.evidence.canonical import canonical_json
from agent.evidence.checkpoint import Checkpoint, sign_checkpoint
from agent.evidence.inventory import Node
from agent.evidence.keys import DeviceKey, fingerprint
from agent.evidence.log import origin_for
from agent.evidence.logcheck import MAX_CHECKPOINT, LogState, check_log
from agent.evidence.merkle import leaf_hash, root_of
from agent.evidence.receipt import Receipt
from agent.evidence.report import Report
from tests.tools.receipts import RECEIPT_UTC, Station, make_station

DEVICE = "BC-0001"
UTC = "2026-11-27T11:00:00.000000Z"


def h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def frame(data: bytes) -> bytes:
    return struct.pack(">II", len(data), zlib.crc32(data)) + data


class LogBench:
    """A device log written entry by entry; :meth:`check` runs the verifier's log half."""

    def __init__(self, root: Path, station: Station) -> None:
        self.root = root
        self.key = DeviceKey.generate(root / "keys" / "device.key")
        self.station = station
        self.records: list[bytes] = []
        (root / "log").mkdir(parents=True)

    # -- entries -------------------------------------------------------------------------------
    def add(self, entry: dict[str, Any] | bytes) -> int:
        self.records.append(entry if isinstance(entry, bytes) else canonical_json(entry))
        return len(self.records) - 1

    def segment(self, seq: int, *, manifest: str | None = None) -> int:
        return self.add({"kind": "segment", "device_seq": seq, "seq": seq,
                         "recording_id": "ab" * 8, "path": f"recordings/r/BC_{seq:05d}.mp4.age",
                         "manifest_sha256": manifest or h(f"m{seq}"),
                         "cipher_sha256": h(f"c{seq}")})

    def receipt(self, seq: int, **override: Any) -> Receipt:
        fields: dict[str, Any] = {"station_id": "ST-1", "device_id": DEVICE, "device_seq": seq,
                                  "cipher_sha256": h(f"c{seq}"),
                                  "manifest_sha256": h(f"m{seq}"), "utc": RECEIPT_UTC}
        fields.update(override)
        from agent.evidence.receipt import issue_receipt

        return issue_receipt(self.station.key, **fields)

    def ack(self, seq: int, signed: Receipt | None = None, /, **override: Any) -> int:
        r = signed or self.receipt(seq)
        entry: dict[str, Any] = {"kind": "event", "type": "acknowledged", "utc": UTC,
                                 "device_seq": seq, "cipher_sha256": h(f"c{seq}"),
                                 "manifest_sha256": h(f"m{seq}"), "receipt": r.to_json(),
                                 "receipt_sha256": r.sha256}
        entry.update(override)
        return self.add(entry)

    def evict(self, seq: int, ack_index: int, **override: Any) -> int:
        ack = canonical_json_entry(self.records[ack_index])
        entry: dict[str, Any] = {"kind": "event", "type": "eviction", "utc": UTC,
                                 "device_seq": seq, "cipher_sha256": h(f"c{seq}"),
                                 "manifest_sha256": h(f"m{seq}"), "ack_index": ack_index,
                                 "receipt_sha256": ack.get("receipt_sha256", h("none")),
                                 "path": f"recordings/r/BC_{seq:05d}.mp4.age"}
        entry.update(override)
        return self.add(entry)

    # -- files ---------------------------------------------------------------------------------
    def checkpoint_text(self, covered: int | None = None, *, origin: str | None = None,
                        key: DeviceKey | None = None,
                        records: list[bytes] | None = None) -> bytes:
        recs = self.records if records is None else records
        size = len(recs) if covered is None else covered
        cp = Checkpoint(origin or origin_for(DEVICE), size,
                        root_of([leaf_hash(r) for r in recs[:size]]))
        return sign_checkpoint(cp, key or self.key)

    def write(self, covered: int | None = None, **kw: Any) -> None:
        (self.root / "log" / "entries.bin").write_bytes(b"".join(map(frame, self.records)))
        (self.root / "log" / "checkpoint").write_bytes(self.checkpoint_text(covered, **kw))

    def node(self, name: str) -> Node:
        path = self.root / "log" / name
        return Node(f"log/{name}", path, "file", path.stat().st_size, "")

    def check(self, *, trusted: bytes | None = None, station: bool = True,
              checkpoint: bool = True, keys: list[bytes] | None = None) -> tuple[Report,
                                                                                 LogState]:
        report = Report(str(self.root))
        st = check_log(self.node("entries.bin"), self.node("checkpoint") if checkpoint else None,
                       keys or [self.key.public_bytes], report, trusted_checkpoint=trusted,
                       station_keys=[self.station.public] if station else [])
        return report, st


def canonical_json_entry(data: bytes) -> dict[str, Any]:
    from agent.evidence.canonical import parse_canonical

    return dict(parse_canonical(data))


def found(report: Report, level: str | None = None) -> list[tuple[str, str, str]]:
    """(level, code, where) of every finding, or of those at ``level``."""
    return [(f.level, f.code, f.where) for f in report.findings if level in (None, f.level)]


def message(report: Report, code: str) -> str:
    (msg,) = [f.message for f in report.findings if f.code == code]
    return msg


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


# -- acknowledgements and evictions ------------------------------------------------------------

def test_receipted_eviction_is_justified(bench: LogBench) -> None:
    """Segment, acknowledged with a station receipt, eviction citing it: the segment may be
    missing, and nothing is found against the receipt."""
    bench.segment(0)
    bench.segment(1)
    a = bench.ack(0)
    bench.evict(0, a)
    bench.write()
    report, st = bench.check()
    assert found(report, "fail") == [] and found(report, "warn") == []
    assert st.evicted == {0}


def test_receipts_not_checked_without_station_keys_are_counted(bench: LogBench) -> None:
    """Without --station-key a well-formed receipt still permits eviction, but one warning
    says how many receipts were taken on their word."""
    for seq in range(3):
        bench.segment(seq)
    a0, a1 = bench.ack(0), bench.ack(1)
    bench.evict(0, a0)
    bench.evict(1, a1)
    bench.write()
    report, st = bench.check(station=False)
    assert found(report) == [("ok", "checkpoint_signature", "log/checkpoint"),
                             ("ok", "log_root", "log/checkpoint"),
                             ("warn", "receipts_unchecked", "log")]
    assert message(report, "receipts_unchecked") == (
        "2 receipts are well formed but were not checked against a station key "
        "(pass --station-key)")
    assert st.evicted == {0, 1}


def test_receipt_from_an_untrusted_station(bench: LogBench, tmp_path: Path) -> None:
    """A receipt signed by a key that is not a trusted station's is invalid, and the eviction
    citing it is unjustified."""
    rogue = make_station(tmp_path / "rogue", "ST-9")
    bench.segment(0)
    receipt = LogBench(tmp_path / "r", rogue).receipt(0)
    a = bench.ack(0, receipt)
    e = bench.evict(0, a)
    bench.write()
    report, st = bench.check()
    assert found(report, "fail") == [("fail", "receipt_invalid", f"log entry {a}"),
                                     ("fail", "eviction_unjustified", f"log entry {e}")]
    assert message(report, "receipt_invalid") == (
        "receipt signed by a key that is not a trusted station key")
    assert message(report, "eviction_unjustified") == (
        "eviction of segment 0 does not cite a valid earlier acknowledgement (receipt) for "
        "exactly that segment")
    assert st.evicted == set()
    report, st = bench.check(station=False)  # without keys: taken on its word, with a warning
    assert found(report, "fail") == [] and st.evicted == {0}


def test_acknowledging_a_segment_not_yet_logged(bench: LogBench) -> None:
    """An acknowledgement before its segment's entry acknowledges nothing."""
    a = bench.ack(0)
    bench.segment(0)
    e = bench.evict(0, a)
    bench.write()
    report, st = bench.check()
    assert found(report, "fail") == [("fail", "receipt_invalid", f"log entry {a}"),
                                     ("fail", "eviction_unjustified", f"log entry {e}")]
    assert message(report, "receipt_invalid") == (
        "acknowledges segment 0, which is not in the log before it")
    assert st.evicted == set()


def test_a_later_segment_entry_cannot_redirect_a_device_seq(bench: LogBench) -> None:
    """The first segment entry for a device_seq is the segment; a second entry reusing the
    number with other hashes does not make a receipt for those hashes valid."""
    bench.segment(0)
    bench.segment(0, manifest=h("forged"))
    receipt = bench.receipt(0, manifest_sha256=h("forged"))
    a = bench.ack(0, receipt, manifest_sha256=h("forged"))
    bench.write()
    report, _ = bench.check()
    assert found(report, "fail") == [("fail", "receipt_invalid", f"log entry {a}")]
    assert message(report, "receipt_invalid") == (
        "receipt manifest_sha256 does not match the segment")


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("device_id", "BC-0002", "receipt device_id does not match the segment"),
    ("device_seq", 1, "receipt device_seq does not match the segment"),
    ("cipher_sha256", h("x"), "receipt cipher_sha256 does not match the segment"),
    ("manifest_sha256", h("x"), "receipt manifest_sha256 does not match the segment"),
])
def test_receipt_for_another_segment(bench: LogBench, field: str, value: Any,
                                     problem: str) -> None:
    """A genuine receipt that names another device or segment acknowledges nothing here; the
    message names the field that differs."""
    bench.segment(0)
    bench.segment(1)
    a = bench.ack(0, bench.receipt(0, **{field: value}))
    bench.write()
    report, _ = bench.check()
    assert found(report, "fail") == [("fail", "receipt_invalid", f"log entry {a}")]
    assert message(report, "receipt_invalid") == problem


@pytest.mark.parametrize("field", ["cipher_sha256", "manifest_sha256"])
def test_acknowledged_entry_with_other_hashes_than_its_segment(bench: LogBench,
                                                               field: str) -> None:
    """The receipt is right but the acknowledged entry's own copy of a hash is not."""
    bench.segment(0)
    a = bench.ack(0, **{field: h("other")})
    bench.write()
    report, _ = bench.check()
    assert found(report, "fail") == [("fail", "receipt_invalid", f"log entry {a}")]
    assert message(report, "receipt_invalid") == (
        "acknowledged entry's hashes do not match the segment's log entry")


def test_receipt_hash_not_matching_the_carried_receipt(bench: LogBench) -> None:
    """receipt_sha256 must be the hash of the receipt the entry carries."""
    bench.segment(0)
    a = bench.ack(0, receipt_sha256=h("other"))
    bench.write()
    report, _ = bench.check()
    assert found(report, "fail") == [("fail", "receipt_invalid", f"log entry {a}")]
    assert message(report, "receipt_invalid") == (
        "receipt_sha256 does not match the receipt it carries")


def test_unparseable_receipt_says_why(bench: LogBench) -> None:
    """A receipt that is not an envelope is invalid with the parser's reason."""
    bench.segment(0)
    a = bench.ack(0, receipt={"receipt": {}})
    bench.write()
    report, _ = bench.check(station=False)
    assert found(report, "fail") == [("fail", "receipt_invalid", f"log entry {a}")]
    assert message(report, "receipt_invalid") == (
        "a receipt is an object with exactly 'receipt' and 'signature'")
    assert "receipts_unchecked" not in report.codes()  # an invalid one is not counted


def test_an_invalid_receipt_does_not_hide_the_next_one(bench: LogBench) -> None:
    """After an invalid acknowledgement the following ones are still checked and count."""
    bench.segment(0)
    bench.segment(1)
    bad = bench.ack(0, receipt_sha256=h("x"))
    good = bench.ack(1)
    bench.evict(1, good)
    bench.write()
    report, st = bench.check()
    assert found(report, "fail") == [("fail", "receipt_invalid", f"log entry {bad}")]
    assert st.evicted == {1}


def test_uncovered_acknowledgement_is_not_checked(bench: LogBench) -> None:
    """An acknowledgement past the checkpoint is not the device's word: not judged, not used."""
    bench.segment(0)
    bench.ack(0, receipt_sha256=h("x"))
    bench.write(covered=1)
    report, _ = bench.check()
    assert "receipt_invalid" not in report.codes()


def test_evictions_past_the_checkpoint_excuse_nothing(bench: LogBench) -> None:
    """Every eviction no checkpoint covers is named; none counts."""
    bench.segment(0)
    bench.segment(1)
    a0, a1 = bench.ack(0), bench.ack(1)
    e0 = bench.evict(0, a0)
    e1 = bench.evict(1, a1)
    bench.write(covered=a1 + 1)
    report, st = bench.check()
    assert found(report, "fail") == [("fail", "checkpoint_stale", "log/checkpoint"),
                                     ("fail", "eviction_unsigned", f"log entry {e0}"),
                                     ("fail", "eviction_unsigned", f"log entry {e1}")]
    assert {f.message for f in report.failures if f.code == "eviction_unsigned"} == {
        "an eviction no signed checkpoint covers: it excuses nothing"}
    assert st.evicted == set()


def test_eviction_citing_a_later_acknowledgement(bench: LogBench) -> None:
    """An eviction must cite an acknowledgement logged before it, not one added afterwards."""
    bench.segment(0)
    e = bench.add({})  # placeholder, replaced below once the ack's index is known
    a = bench.ack(0)
    ack_entry = canonical_json_entry(bench.records[a])
    bench.records[e] = canonical_json({
        "kind": "event", "type": "eviction", "utc": UTC, "device_seq": 0,
        "cipher_sha256": h("c0"), "manifest_sha256": h("m0"), "ack_index": a,
        "receipt_sha256": ack_entry["receipt_sha256"]})
    bench.write()
    report, st = bench.check()
    assert found(report, "fail") == [("fail", "eviction_unjustified", f"log entry {e}")]
    assert st.evicted == set()


@pytest.mark.parametrize("field", ["device_seq", "cipher_sha256", "manifest_sha256",
                                   "receipt_sha256"])
def test_eviction_must_match_its_acknowledgement_exactly(bench: LogBench, field: str) -> None:
    """An eviction citing a valid acknowledgement of another segment (or with another hash)
    is unjustified; the next, correct eviction still counts."""
    bench.segment(0)
    bench.segment(1)
    a0, a1 = bench.ack(0), bench.ack(1)
    value: Any = 1 if field == "device_seq" else h("other")
    bad = bench.evict(0, a0, **{field: value})
    bench.evict(1, a1)
    bench.write()
    report, st = bench.check()
    assert found(report, "fail") == [("fail", "eviction_unjustified", f"log entry {bad}")]
    seq = 1 if field == "device_seq" else 0
    assert message(report, "eviction_unjustified").startswith(f"eviction of segment {seq} ")
    assert st.evicted == {1}


def test_eviction_citing_something_that_is_no_acknowledgement(bench: LogBench) -> None:
    """ack_index pointing at the segment entry itself justifies nothing."""
    s = bench.segment(0)
    e = bench.evict(0, s, receipt_sha256=h("r"))
    bench.write()
    report, st = bench.check()
    assert found(report, "fail") == [("fail", "eviction_unjustified", f"log entry {e}")]
    assert st.evicted == set()
