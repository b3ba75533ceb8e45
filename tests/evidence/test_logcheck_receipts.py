"""The verifier's rules for acknowledgements and evictions (agent/evidence/logcheck.py): an
eviction is legitimate only when it is covered by the signed checkpoint and cites an earlier
covered ``acknowledged`` entry whose station receipt names exactly that segment.

Each test builds a log by hand (tests/evidence/logbench.py) and checks the exact findings and
the words of each: which entry, which segment, which field of the receipt differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.evidence.canonical import canonical_json
from tests.evidence.logbench import UTC, LogBench, canonical_json_entry, found, h, message
from tests.tools.receipts import make_station


@pytest.fixture
def bench(tmp_path: Path) -> LogBench:
    return LogBench(tmp_path / "data", make_station(tmp_path / "station"))


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
