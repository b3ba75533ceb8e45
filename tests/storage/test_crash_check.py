"""Crash consistency from real syscalls: temp → write → fsync → rename → fsync(dir)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.storage.crash_check import (
    check_all_replacements,
    check_atomic_replace,
    parse_strace,
    trace_python,
)

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed"),
]


def test_atomic_write_follows_the_safe_order(tmp_path: Path) -> None:
    """agent.atomic.atomic_write, traced by strace, replaces a state file in the safe order."""
    target = tmp_path / "state" / "overrides.json"
    target.parent.mkdir()
    target.write_text("old")
    calls = trace_python(
        "from pathlib import Path; from agent.atomic import atomic_write; "
        f"atomic_write(Path({str(target)!r}), b'{{\"acked\": [1, 2, 3]}}', mode=0o600)")
    assert check_atomic_replace(calls, target) == []
    assert target.read_text() == '{"acked": [1, 2, 3]}'


def test_the_checker_catches_unsafe_writers(tmp_path: Path) -> None:
    """In-place writes, a missing fsync and a missing directory fsync are each reported."""
    target = tmp_path / "state.json"
    in_place = trace_python(f"open({str(target)!r}, 'wb').write(b'x')")
    assert any("never renamed" in p for p in check_atomic_replace(in_place, target))

    no_fsync = trace_python(
        "import os\n"
        f"t = {str(target) + '.tmp'!r}\n"
        "with open(t, 'wb') as f: f.write(b'x')\n"
        f"os.replace(t, {str(target)!r})\n")
    problems = check_atomic_replace(no_fsync, target)
    assert any("not fsynced between its last write and the rename" in p for p in problems)
    assert any("directory" in p for p in problems)

    no_dir_sync = trace_python(
        "import os\n"
        f"t = {str(target) + '.tmp'!r}\n"
        "with open(t, 'wb') as f:\n    f.write(b'x'); f.flush(); os.fsync(f.fileno())\n"
        f"os.replace(t, {str(target)!r})\n")
    assert check_atomic_replace(no_dir_sync, target) == [
        f"directory {tmp_path} was not fsynced after the rename"]

    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    wrong_dir = trace_python(
        "import os\n"
        f"t = {str(elsewhere / 'x.tmp')!r}\n"
        "with open(t, 'wb') as f:\n    f.write(b'x'); f.flush(); os.fsync(f.fileno())\n"
        f"os.replace(t, {str(target)!r})\n"
        f"d = os.open({str(tmp_path)!r}, os.O_RDONLY | os.O_DIRECTORY); os.fsync(d)\n")
    assert any("is not in" in p for p in check_atomic_replace(wrong_dir, target))


def test_parser_joins_interrupted_calls() -> None:
    """strace -f splits calls across threads; the parser stitches them back together."""
    text = (
        '101 openat(AT_FDCWD, "/d/.s.tmp", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3\n'
        "101 write(3, \"abc\", 3 <unfinished ...>\n"
        "102 close(7) = 0\n"
        "101 <... write resumed>) = 3\n"
        "101 fsync(3) = 0\n"
        '101 rename("/d/.s.tmp", "/d/s") = 0\n'
        '101 openat(AT_FDCWD, "/d", O_RDONLY|O_DIRECTORY) = 3\n'
        "101 fsync(3) = 0\n"
        "101 +++ exited with 0 +++\n"
    )
    calls = parse_strace(text)
    assert [c.name for c in calls] == ["openat", "close", "write", "fsync", "rename", "openat",
                                       "fsync"]
    assert calls[2].fd == 3 and calls[2].result == 3
    assert check_atomic_replace(calls, Path("/d/s")) == []


def test_every_state_file_of_an_evidence_session_is_replaced_safely(tmp_path: Path) -> None:
    """Key, public key, journal, manifest, checkpoint (after a receipt): each replaced safely."""
    data = tmp_path / "data"
    calls = trace_python(
        "from pathlib import Path\n"
        "from agent.evidence.age import Identity\n"
        "from agent.evidence.keys import DeviceKey\n"
        "from agent.evidence.manifest import ClockInfo, MediaInfo, SegmentInfo, Timestamp\n"
        "from agent.evidence.store import EvidenceStore\n"
        "from tests.tools.receipts import make_station\n"
        f"data = Path({str(data)!r})\n"
        "key = DeviceKey.generate(data / 'keys' / 'device.key')\n"
        f"station = make_station(Path({str(tmp_path / 'station')!r}))\n"
        "store = EvidenceStore(data, key=key, recipients=[Identity.generate().recipient],\n"
        "                      encrypt=True, device_id='BC-0001', station_keys=[station.public])\n"
        "seg = store.open_segment(SegmentInfo('ab' * 16, 0,\n"
        "    Timestamp('2026-11-27T10:00:00.000000Z', 0), ClockInfo('gps', 20)))\n"
        "seg.sink.write(b'x' * 100_000)\n"
        "signed = store.seal(seg, end=Timestamp('2026-11-27T10:00:10.000000Z', 10_000_000),\n"
        "                    media=MediaInfo())\n"
        "store.accept_receipt(station.receipt(signed), origin={'via': 'ctl', 'uid': 0})\n"
        "store.close()\n")
    results = check_all_replacements(calls)
    names = {Path(target).name for target in results}
    assert {"device.key", "device.pub", "checkpoint"} <= names, names
    assert "acks.json" not in names  # acknowledgements live in the log, not a side file
    assert any(n.endswith(".manifest.json") for n in names)
    assert any(n.endswith(".open.json") for n in names)  # the segment journal
    assert {target: problems for target, problems in results.items() if problems} == {}
