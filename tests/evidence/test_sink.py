"""EvidenceSink: PyAV muxes into it, storage sees only ciphertext, storage faults surface."""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from pathlib import Path
from typing import BinaryIO

import av
import pytest
from evbench import AgencyKey, need

from agent.evidence.age import ENCRYPTED_CHUNK_SIZE, header_length
from agent.evidence.sink import EvidenceSink, recover_ciphertext
from hw.errors import StorageFull, StorageReadOnly, StorageWriteError
from hw.storage_sim import SimStorage

MUX_OPTIONS = {"movflags": "frag_keyframe+empty_moov+default_base_moof", "flush_packets": "1"}


def append_file(path: Path) -> BinaryIO:
    """A plain append-only file, as FsStorage.open_append gives; the sink closes it."""
    return open(path, "ab", buffering=0)


def remux_into(sink: EvidenceSink, src: Path) -> None:
    """Mux the source's packets into the sink exactly as the segment writer does."""
    with av.open(str(src)) as inp:
        out = av.open(sink, "w", format="mp4", options=MUX_OPTIONS)
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
            sink.sync()
        out.close()


def test_pyav_segment_decrypts_with_age_to_media_ffprobe_accepts(
        tmp_path: Path, agency: AgencyKey, small_mp4: Path) -> None:
    """Muxer → sink → disk → `age -d -i` → ffprobe sees an H.264 stream; hashes are honest."""
    need("ffprobe")
    path = tmp_path / "seg.mp4.age"
    sink = EvidenceSink(append_file(path), [agency.recipient])
    remux_into(sink, small_mp4)
    seal = sink.close()
    blob = path.read_bytes()
    assert seal.cipher_sha256 == hashlib.sha256(blob).hexdigest()
    assert seal.cipher_bytes == len(blob) and seal.encrypted
    plain = subprocess.run(["age", "-d", "-i", str(agency.path)], input=blob,
                           capture_output=True, check=True, timeout=60).stdout
    assert seal.plain_sha256 == hashlib.sha256(plain).hexdigest()
    assert plain[4:8] == b"ftyp" and b"moof" in plain
    assert b"ftyp" not in blob and b"moof" not in blob  # plaintext never on storage
    (tmp_path / "seg.mp4").write_bytes(plain)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name,width",
         "-of", "csv=p=0", str(tmp_path / "seg.mp4")],
        capture_output=True, text=True, check=True, timeout=60)
    assert probe.stdout.strip() == "h264,160"


def test_unencrypted_when_configured_hashes_equal(tmp_path: Path) -> None:
    """Encryption off (explicit): plaintext on disk, both hashes the same."""
    path = tmp_path / "seg.mp4"
    sink = EvidenceSink(append_file(path), [], encrypt=False)
    sink.write(b"abc" * 1000)
    seal = sink.close()
    assert path.read_bytes() == b"abc" * 1000
    assert seal.plain_sha256 == seal.cipher_sha256 and not seal.encrypted


def test_sync_makes_complete_chunks_durable(tmp_path: Path, agency: AgencyKey) -> None:
    """After sync, the file holds the header and every full chunk, none of the tail."""
    path = tmp_path / "seg.mp4.age"
    sink = EvidenceSink(append_file(path), [agency.recipient])
    sink.write(os.urandom(3 * 65536 + 10))
    sink.sync()
    data = path.read_bytes()
    head = header_length(data)
    assert head is not None and len(data) == head + 3 * ENCRYPTED_CHUNK_SIZE
    sink.close()


@pytest.mark.parametrize(("err", "exc"), [(errno.EIO, StorageWriteError),
                                          (errno.EROFS, StorageReadOnly)])
def test_storage_fault_poisons_the_sink(tmp_path: Path, agency: AgencyKey, err: int,
                                        exc: type[Exception]) -> None:
    """A failing card raises the matching storage error, and every later call raises too."""
    disk = SimStorage(tmp_path, 10 << 20)
    sink = EvidenceSink(disk.open_append(tmp_path / "seg.mp4.age"), [agency.recipient])
    sink.write(os.urandom(70_000))
    disk.fail_writes(err)
    with pytest.raises(exc):
        sink.write(os.urandom(70_000))
    disk.fail_writes(None)
    with pytest.raises(exc):
        sink.write(b"x")
    with pytest.raises(exc):
        sink.close()


def test_full_disk_raises_storage_full(tmp_path: Path, agency: AgencyKey) -> None:
    """Running out of space is StorageFull (ENOSPC), not a generic error."""
    disk = SimStorage(tmp_path, 200_000)
    sink = EvidenceSink(disk.open_append(tmp_path / "seg.mp4.age"), [agency.recipient])
    with pytest.raises(StorageFull):
        for _ in range(10):
            sink.write(os.urandom(65536))


def test_recover_cuts_to_last_complete_chunk(tmp_path: Path, agency: AgencyKey) -> None:
    """A crashed segment keeps header + whole chunks; age decrypts that prefix."""
    path = tmp_path / "seg.mp4.age"
    data = os.urandom(5 * 65536)
    sink = EvidenceSink(append_file(path), [agency.recipient])
    sink.write(data)
    sink.sync()  # 4 chunks on disk, the 5th held back: then the process dies
    with open(path, "ab") as f:
        f.write(os.urandom(1234))  # and a partial write made it out
    rec = recover_ciphertext(path)
    blob = path.read_bytes()
    assert rec.chunks == 4 and rec.cipher_bytes == len(blob)
    assert rec.cipher_sha256 == hashlib.sha256(blob).hexdigest()
    cli = subprocess.run(["age", "-d", "-i", str(agency.path)], input=blob,
                         capture_output=True, timeout=60, check=False)
    assert cli.stdout == data[: 4 * 65536]
