"""The append-only log: durable appends, torn-tail repair, corruption refused, proofs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.evidence.checkpoint import parse_signed_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.log import EvidenceLog, origin_for
from agent.evidence.merkle import EMPTY_ROOT, leaf_hash, verify_consistency, verify_inclusion
from hw.errors import EvidenceError, LogCorrupt

ORIGIN = origin_for("BC-0001")


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> DeviceKey:
    return DeviceKey.generate(tmp_path_factory.mktemp("k") / "device.key")


def fill(log: EvidenceLog, n: int) -> None:
    for i in range(n):
        log.append({"kind": "event", "type": "boot", "i": i})


def test_append_returns_place_and_signed_checkpoint(tmp_path: Path, key: DeviceKey) -> None:
    """Each append is covered by a checkpoint on disk before append returns."""
    with EvidenceLog(tmp_path, key, ORIGIN) as log:
        r0 = log.append({"kind": "event", "type": "boot"})
        r1 = log.append({"kind": "event", "type": "clock_step", "delta_us": -3})
        assert (r0.index, r1.index) == (0, 1)
        cp = parse_signed_checkpoint((tmp_path / "checkpoint").read_bytes())
        assert cp.checkpoint.size == 2 and cp.checkpoint.root == log.root
        assert cp.text == r1.checkpoint
        cp.verify([key.public_bytes])
        assert log.last_leaf() == r1.leaf_hash
        entries = list(log.entries())
        assert leaf_hash(entries[1][1]) == r1.leaf_hash


def test_floats_never_enter_the_log(tmp_path: Path, key: DeviceKey) -> None:
    """An entry with a float is refused before anything is written."""
    with EvidenceLog(tmp_path, key, ORIGIN) as log:
        with pytest.raises(TypeError):
            log.append({"kind": "event", "battery": 3.7})
        assert log.size == 0


def test_torn_final_record_dropped_on_open(tmp_path: Path, key: DeviceKey) -> None:
    """A crash mid-append leaves a partial record; reopening cuts it and keeps the rest."""
    with EvidenceLog(tmp_path, key, ORIGIN) as log:
        fill(log, 3)
        root = log.root
    path = tmp_path / "entries.bin"
    good = path.read_bytes()
    with open(path, "ab") as f:
        f.write(b"\x00\x00\x00\x40\x12\x34")  # header of a record that never got its body
    with EvidenceLog(tmp_path, key, ORIGIN) as log:
        assert log.size == 3 and log.root == root
        assert path.read_bytes() == good
        log.append({"kind": "event", "type": "boot"})
        assert log.size == 4


def test_damage_before_the_tail_is_corruption(tmp_path: Path, key: DeviceKey) -> None:
    """A bad checksum in the middle is not a crash artefact: LogCorrupt names the record."""
    with EvidenceLog(tmp_path, key, ORIGIN) as log:
        fill(log, 3)
    path = tmp_path / "entries.bin"
    data = bytearray(path.read_bytes())
    data[12] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(LogCorrupt, match="record 0"):
        EvidenceLog(tmp_path, key, ORIGIN)


def test_lost_entries_detected_via_checkpoint(tmp_path: Path, key: DeviceKey) -> None:
    """Cutting whole records off the end contradicts the signed checkpoint."""
    with EvidenceLog(tmp_path, key, ORIGIN) as log:
        fill(log, 2)
        size_after_two = (tmp_path / "entries.bin").stat().st_size
        fill(log, 2)
    with open(tmp_path / "entries.bin", "r+b") as f:
        f.truncate(size_after_two)
    with pytest.raises(LogCorrupt, match="covers 4"):
        EvidenceLog(tmp_path, key, ORIGIN)


def test_second_process_cannot_open_the_same_log(tmp_path: Path, key: DeviceKey) -> None:
    """The log has one writer; a second opener is told the log is in use."""
    with EvidenceLog(tmp_path, key, ORIGIN), pytest.raises(EvidenceError, match="in use"):
        EvidenceLog(tmp_path, key, ORIGIN)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(0, 40), min_size=1, max_size=12), cut=st.integers(0, 10_000),
       data=st.data())
def test_log_properties(key: DeviceKey, sizes: list[int], cut: int, data: st.DataObject
                        ) -> None:
    """Any history: proofs verify against every checkpoint; a crash that tears the last
    append (its checkpoint never written) reopens to exactly the entries before it."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        roots = []
        with EvidenceLog(d, key, ORIGIN) as log:
            for i, n in enumerate(sizes):
                before = (d / "checkpoint").read_bytes()
                log.append({"kind": "event", "type": "x", "pad": "p" * n, "i": i})
                roots.append(log.root)
            n = log.size
            i = data.draw(st.integers(0, n - 1))
            entries = dict(log.entries())
            assert verify_inclusion(leaf_hash(entries[i]), i, n, log.inclusion_proof(i), log.root)
            for m, root in enumerate(roots, start=1):
                assert verify_consistency(m, n, root, log.root, log.consistency_proof(m))
        whole = (d / "entries.bin").read_bytes()
        record = 8 + len(entries[n - 1])
        (d / "entries.bin").write_bytes(whole[: len(whole) - 1 - cut % record])
        (d / "checkpoint").write_bytes(before)  # the crash came before the new checkpoint
        with EvidenceLog(d, key, ORIGIN) as log2:
            assert log2.size == n - 1
            assert log2.root == (roots[-2] if n > 1 else EMPTY_ROOT)
            assert parse_signed_checkpoint(log2.checkpoint()).checkpoint.size == n - 1
