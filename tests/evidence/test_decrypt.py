"""``bodycam decrypt``: a recovered segment that stock ``age`` refuses yields its authenticated
prefix, and says exactly how much; wrong keys, junk and special files get named errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from evbench import AgencyKey, need
from test_sink import append_file, remux_into

from agent.evidence.age import CHUNK_SIZE, ENCRYPTED_CHUNK_SIZE, header_length
from agent.evidence.sink import EvidenceSink, recover_ciphertext


def bodycam_decrypt(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", "decrypt", *map(str, args)],
                          capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture(scope="module")
def segment(tmp_path_factory: pytest.TempPathFactory, agency: AgencyKey) -> tuple[Path, bytes]:
    """A real encrypted segment (libx264 fragmented MP4 through the evidence sink) and its
    plaintext as the stock ``age -d`` gives it; several 64 KiB chunks long."""
    need("ffmpeg")
    need("age")
    d = tmp_path_factory.mktemp("decrypt")
    src = d / "noise.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=15",
         "-vf", "noise=alls=40:allf=t", "-t", "3", "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv420p", "-g", "15", "-movflags", "frag_keyframe+empty_moov+default_base_moof",
         str(src)], check=True, capture_output=True, timeout=60)
    path = d / "seg.mp4.age"
    sink = EvidenceSink(append_file(path), [agency.recipient])
    remux_into(sink, src)
    sink.close()
    plain = subprocess.run(["age", "-d", "-i", str(agency.path), str(path)],
                           capture_output=True, check=True, timeout=60).stdout
    assert len(plain) > 4 * CHUNK_SIZE, "the bench needs a segment of several chunks"
    return path, plain


def _cut(segment: Path, dest: Path, chunks: int, into_next: int) -> Path:
    """The segment cut ``into_next`` bytes into the chunk after ``chunks`` complete ones."""
    blob = segment.read_bytes()
    head = header_length(blob)
    assert head is not None
    dest.write_bytes(blob[: head + chunks * ENCRYPTED_CHUNK_SIZE + into_next])
    return dest


def test_complete_segment_matches_stock_age(segment, agency: AgencyKey, tmp_path: Path) -> None:
    """A sealed segment decrypts to exactly what `age -d` gives; exit 0, reported complete."""
    path, plain = segment
    out = tmp_path / "seg.mp4"
    res = bodycam_decrypt(path, "--identity", agency.path, "--out", out)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == plain
    chunks = -(-len(plain) // CHUNK_SIZE)
    assert f"complete: {len(plain)} bytes in {chunks} chunk(s)" in res.stderr


def test_segment_cut_mid_chunk_gives_its_authenticated_prefix(segment, agency: AgencyKey,
                                                              tmp_path: Path) -> None:
    """Cut 1000 bytes into the fourth chunk: `age -d` fails; we write exactly the first three
    chunks of plaintext, exit 3, and name the bytes, chunks and discarded tail."""
    path, plain = segment
    cut = _cut(path, tmp_path / "cut.mp4.age", chunks=3, into_next=1000)
    stock = subprocess.run(["age", "-d", "-i", str(agency.path), str(cut)], capture_output=True,
                           check=False, timeout=60)
    assert stock.returncode != 0, "stock age must refuse a file without its final chunk"
    out = tmp_path / "prefix.mp4"
    res = bodycam_decrypt(cut, "--identity", agency.path, "--out", out)
    assert res.returncode == 3, res.stderr
    prefix = out.read_bytes()
    assert prefix == plain[: 3 * CHUNK_SIZE]
    assert stock.stdout == prefix[: len(stock.stdout)]
    assert f"authenticated prefix of {3 * CHUNK_SIZE} bytes (3 complete chunk(s)" in res.stderr
    assert "discarded 1000 unauthenticated trailing byte(s)" in res.stderr
    assert "final chunk missing" in res.stderr


def test_recovered_segment_decrypts_to_the_chunks_recovery_kept(segment, agency: AgencyKey,
                                                                tmp_path: Path) -> None:
    """After crash recovery (cut back to the last complete chunk) the prefix is intact and the
    prefix is itself a playable fragmented MP4 (ffprobe reads its video stream)."""
    need("ffprobe")
    path, plain = segment
    cut = _cut(path, tmp_path / "crashed.mp4.age", chunks=2, into_next=40_000)
    recovered = recover_ciphertext(cut)
    assert recovered.chunks == 2
    out = tmp_path / "recovered.mp4"
    res = bodycam_decrypt(cut, "--identity", agency.path, "--out", out)
    assert res.returncode == 3, res.stderr
    assert out.read_bytes() == plain[: 2 * CHUNK_SIZE]
    assert "discarded 0 unauthenticated" in res.stderr
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
                            "stream=codec_name", "-of", "csv=p=0", str(out)],
                           capture_output=True, text=True, check=False, timeout=60)
    assert probe.stdout.strip() == "h264"


def test_wrong_identity_is_a_named_failure_with_no_output(segment, tmp_path: Path) -> None:
    """Another agency's key: exit 1, a message naming the problem, no output file left."""
    need("age-keygen")
    path, _ = segment
    other = tmp_path / "other.key"
    subprocess.run(["age-keygen", "-o", str(other)], check=True, capture_output=True)
    out = tmp_path / "out.mp4"
    res = bodycam_decrypt(path, "--identity", other, "--out", out)
    assert res.returncode == 1
    assert "no identity matches" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [other]


def test_altered_chunk_is_a_failure_not_a_truncation(segment, agency: AgencyKey,
                                                     tmp_path: Path) -> None:
    """A flipped byte in the second chunk: exit 1 ('does not authenticate'), nothing kept."""
    path, _ = segment
    blob = bytearray(path.read_bytes())
    head = header_length(bytes(blob))
    assert head is not None
    blob[head + ENCRYPTED_CHUNK_SIZE + 100] ^= 1
    bad = tmp_path / "bad.mp4.age"
    bad.write_bytes(bytes(blob))
    out = tmp_path / "out.mp4"
    res = bodycam_decrypt(bad, "--identity", agency.path, "--out", out)
    assert res.returncode == 1
    assert "chunk 1 does not authenticate" in res.stderr and "Traceback" not in res.stderr
    assert not out.exists()


@pytest.mark.parametrize("kind", ["garbage", "empty", "header-only-cut", "fifo", "directory",
                                  "missing"])
def test_adversarial_inputs_get_named_errors(kind: str, segment, agency: AgencyKey,
                                             tmp_path: Path) -> None:
    """Junk, an empty file, a cut inside the header, a FIFO (no hang), a directory and a missing
    file each give a one-line error and a usage/failure exit code, never a traceback."""
    path, _ = segment
    target = tmp_path / "input.age"
    expect = {"garbage": (1, "not an age v1 file"), "empty": (1, "ends inside its age header"),
              "header-only-cut": (1, "ends inside its age header"),
              "fifo": (2, "not a regular file"), "directory": (2, "not a regular file"),
              "missing": (2, "cannot open")}[kind]
    if kind == "garbage":
        target.write_bytes(os.urandom(100_000))
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "header-only-cut":
        target.write_bytes(path.read_bytes()[:60])
    elif kind == "fifo":
        os.mkfifo(target)
    elif kind == "directory":
        target.mkdir()
    out = tmp_path / "out.mp4"
    res = bodycam_decrypt(target, "--identity", agency.path, "--out", out)
    assert (res.returncode, expect[1] in res.stderr) == (expect[0], True), res.stderr
    assert "Traceback" not in res.stderr and not out.exists()


def test_identity_problems_and_existing_output_are_usage_errors(segment, agency: AgencyKey,
                                                                tmp_path: Path) -> None:
    """No identity, a FIFO or the segment itself as identity, and an existing --out: exit 2."""
    path, _ = segment
    fifo = tmp_path / "id.fifo"
    os.mkfifo(fifo)
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    env = {k: v for k, v in os.environ.items() if k != "BODYCAM_AGE_IDENTITY"}
    res = subprocess.run([sys.executable, "-m", "agent.cli", "decrypt", str(path), "--out",
                          str(tmp_path / "o.mp4")], capture_output=True, text=True, env=env,
                         check=False, timeout=60)
    assert res.returncode == 2 and "identity is needed" in res.stderr
    for args, message in (((path, "--identity", fifo), "not a regular file"),
                          ((path, "--identity", path), "not an identity file"),
                          ((path, "--identity", agency.path, "--out", existing), "exists")):
        res = bodycam_decrypt(*args, *(() if "--out" in args else ("--out", tmp_path / "o.mp4")))
        assert res.returncode == 2 and message in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
    assert existing.read_bytes() == b"keep me" and not (tmp_path / "o.mp4").exists()


def test_help_documents_the_exit_codes() -> None:
    """--help names every exit status."""
    res = bodycam_decrypt("--help")
    assert res.returncode == 0
    for line in ("0  complete", "3  truncated", "1  failed", "2  usage"):
        assert line in res.stdout
