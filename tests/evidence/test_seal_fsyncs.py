"""A seal costs three fsyncs, and a crash at each step of it loses nothing.

On a microSD card every fsync costs 5-50 ms; a seal used to take nine. The count is read from
the kernel (strace), so a buffered write or a new fsync added anywhere on the path fails it.
The crash states are built from a real seal, rewound to the instant of each step (the
power-cut harness, tests/recording/test_powercut.py, cuts a whole agent).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest
from evbench import AgencyKey, open_store, segment_info, write_recording

from agent.evidence.journal import Journal
from agent.evidence.manifest import GpsSummary, MediaInfo, Timestamp
from agent.evidence.segment_files import envelope_temp, fill_file
from agent.evidence.verify import verify
from agent.storage.crash_check import trace_python

REPO = Path(__file__).resolve().parents[2]
_BEGIN, _END = "/nonexistent/seal-begin", "/nonexistent/seal-end"


def _fsyncs_between_markers(data: Path, agency: AgencyKey, *, segments: int) -> list[int]:
    """fsync/fdatasync calls of each seal of a fresh process, as strace saw them."""
    code = (
        "import os, sys, uuid\n"
        f"sys.path.insert(0, {str(REPO / 'tests' / 'evidence')!r})\n"
        "from pathlib import Path\n"
        "from evbench import segment_info\n"
        "from agent.evidence.age import Recipient\n"
        "from agent.evidence.keys import DeviceKey\n"
        "from agent.evidence.manifest import MediaInfo, Timestamp\n"
        "from agent.evidence.store import EvidenceStore\n"
        f"data = Path({str(data)!r})\n"
        "store = EvidenceStore(data, key=DeviceKey.load(data / 'keys' / 'device.key'),\n"
        f"    recipients=[Recipient.parse({str(agency.recipient)!r})], encrypt=True,\n"
        "    device_id='BC-0001')\n"
        "rid = uuid.uuid4().hex\n"
        f"for seq in range({segments}):\n"
        "    seg = store.open_segment(segment_info(rid, seq))\n"
        "    for _ in range(50):\n"
        "        seg.sink.write(os.urandom(4096))\n"
        "    seg.sink.sync()\n"
        "    end = Timestamp('2026-11-27T10:00:10.000000Z', (seq + 1) * 10_000_000)\n"
        "    def marker(p):\n"
        "        try:\n"
        "            os.open(p, os.O_RDONLY)\n"
        "        except OSError:\n"
        "            pass\n"
        f"    marker({_BEGIN!r})\n"
        "    store.seal(seg, end=end, media=MediaInfo())\n"
        f"    marker({_END!r})\n"
        "store.close()\n")
    calls = trace_python(code)
    counts, inside = [], False
    for call in calls:
        if call.name in ("openat", "open") and call.paths and call.paths[0] in (_BEGIN, _END):
            inside = call.paths[0] == _BEGIN
            if inside:
                counts.append(0)
        elif inside and call.name in ("fsync", "fdatasync"):
            counts[-1] += 1
    return counts


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.timeout(120)
def test_a_seal_takes_at_most_three_fsyncs(data_dir: Path, agency: AgencyKey) -> None:
    """Under strace, each of three seals (the first in a new folder, the next after an open
    in it) makes at most three fsync/fdatasync calls; the data still verifies."""
    counts = _fsyncs_between_markers(data_dir, agency, segments=3)
    assert len(counts) == 3, counts
    assert max(counts) <= 3, f"fsyncs per seal: {counts}"
    assert verify(data_dir, identity=[agency.identity]).ok


def _seal_until_fsync_1(data_dir: Path, agency: AgencyKey) -> tuple[bytes, str]:
    """Run a seal up to its first fsync (envelope durable, media fsynced, nothing logged),
    then 'lose power'. Returns the plaintext hash and the media path."""
    store = open_store(data_dir, agency)
    seg = store.open_segment(segment_info(uuid.uuid4().hex, 0))
    for _ in range(30):
        seg.sink.write(os.urandom(4096))
    result = seg.sink.finish()
    manifest = store._manifest(seg.journal, result, end=Timestamp("2026-11-27T10:00:10.000000Z",
                               10_000_000), media=MediaInfo(), gps=GpsSummary(), bookmarks=(),
                               matter=None, flags=(), clock=None)
    envelope = store._sign(manifest).envelope()
    fill_file(envelope_temp(seg.journal.media), envelope)
    seg.sink.close()
    store.log.close()  # the process dies: no settle, no log append
    return envelope, str(seg.journal.media)


def test_crash_after_the_envelope_and_media_recovers_the_whole_segment(
        data_dir: Path, agency: AgencyKey) -> None:
    """Envelope and media durable, no log leaf: recovery seals the whole segment (plaintext
    hash kept), flagged recovered; no temporary file is left; the data verifies."""
    _envelope, media = _seal_until_fsync_1(data_dir, agency)
    store = open_store(data_dir, agency)
    [signed] = store.recover()
    store.close()
    assert signed.manifest["flags"] == ["recovered"]
    assert signed.manifest["file"]["plain_sha256"] is not None
    assert not list(Path(media).parent.glob(".*.tmp-*"))
    assert verify(data_dir, identity=[agency.identity]).ok


def test_crash_before_the_media_fsync_recovers_a_truncated_segment(
        data_dir: Path, agency: AgencyKey) -> None:
    """Envelope durable but the media's unsynced tail lost: the media does not match the
    envelope's hashes, so recovery cuts it to whole chunks and flags it truncated, keeping
    what the seal knew (end time)."""
    _envelope, media = _seal_until_fsync_1(data_dir, agency)
    path = Path(media)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 5000)
    store = open_store(data_dir, agency)
    [signed] = store.recover()
    store.close()
    assert signed.manifest["flags"] == ["recovered", "truncated"]
    assert signed.manifest["end"]["mono_us"] == 10_000_000
    assert verify(data_dir, identity=[agency.identity]).ok


def test_a_torn_envelope_is_ignored(data_dir: Path, agency: AgencyKey) -> None:
    """Half an envelope (a cut during fsync 1) is not a manifest: recovery treats the
    segment as open-stage (truncated) and removes the torn copy."""
    envelope, media = _seal_until_fsync_1(data_dir, agency)
    [temp] = Path(media).parent.glob(".*.tmp-*")
    temp.write_bytes(envelope[: len(envelope) // 2])
    store = open_store(data_dir, agency)
    [signed] = store.recover()
    store.close()
    assert "truncated" in signed.manifest["flags"]
    assert not temp.exists()
    assert verify(data_dir, identity=[agency.identity]).ok


def test_crash_after_the_log_append_finishes_the_rename(data_dir: Path, agency: AgencyKey) -> None:
    """Leaf durable, but the folder's fsync never came: the disk shows the journal and the
    temporary envelope, no manifest. Recovery restores the very manifest that was logged,
    drops both, and logs nothing twice."""
    store = open_store(data_dir, agency)
    [signed] = write_recording(store, segments=1)
    store.close()
    manifest = next((data_dir / "recordings").glob("*/*.manifest.json"))
    media = manifest.with_name(signed.manifest["file"]["name"])
    journal = Journal(manifest.with_name(manifest.name.replace(".manifest.json", ".open.json")),
                      media, 0, True, segment_info(signed.manifest["recording_id"], 0), None)
    journal.write()
    manifest.rename(manifest.with_name(f".{manifest.name}.tmp-1"))
    store = open_store(data_dir, agency)
    size = store.log.size
    assert store.recover() == []
    assert store.log.size == size
    store.close()
    assert manifest.read_bytes() == signed.envelope()
    assert not journal.path.exists() and not list(manifest.parent.glob(".*.tmp-*"))
    assert verify(data_dir, identity=[agency.identity]).ok
