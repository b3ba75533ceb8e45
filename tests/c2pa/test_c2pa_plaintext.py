"""Issuing Content Credentials keeps DESIGN §3's promise: plaintext never touches storage."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from c2pabench import Bench

from agent.c2pa import credential_path


class _Spy:
    """An append-only evidence file that remembers every byte handed to storage."""

    def __init__(self, path: Path, seen: list[bytes]) -> None:
        self._f = open(path, "ab", buffering=0)  # noqa: SIM115 -- closed by the sink
        self._seen = seen

    def write(self, data: bytes) -> int:
        self._seen.append(bytes(data))
        return self._f.write(data)

    def __getattr__(self, name: str) -> object:
        return getattr(self._f, name)


def _windows(data: bytes, n: int = 24, size: int = 32) -> list[bytes]:
    """Distinctive slices spread over the plaintext (header, fragments, tail)."""
    step = max(1, (len(data) - size) // n)
    return [data[i:i + size] for i in range(0, len(data) - size, step)]


def test_no_plaintext_reaches_storage_while_sealing_with_credentials(
        bench: Bench, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Walk every file the device wrote (data directory and the process's TMPDIR, which the
    C2PA library would use for scratch files): no slice of the plaintext is in any of them, and
    what went to the media file is ciphertext only. The credential is made from hashes alone."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    plain = clip.read_bytes()
    seen: list[bytes] = []
    store = bench.store(open_append=lambda p: _Spy(p, seen))  # type: ignore[arg-type, return-value]
    media, _ = bench.seal(store, plain)
    store.close()
    assert credential_path(media).stat().st_size > 0
    probes = [*_windows(plain), plain[:8]]  # ftyp box start
    written = b"".join(seen)
    assert written and not any(p in written for p in probes)
    files = [Path(d) / f for d, _, fs in os.walk(bench.data) for f in fs]
    files += [Path(d) / f for d, _, fs in os.walk(scratch) for f in fs]
    assert media in files and credential_path(media) in files
    for path in files:
        content = path.read_bytes()
        leaked = [i for i, p in enumerate(probes) if p in content]
        assert not leaked, f"{path} holds plaintext slices {leaked}"
    # and the check can fail: the decrypted copy a clerk makes does contain them
    decrypted = bench.decrypt(media, tmp_path / "clerk")
    assert all(p in decrypted.read_bytes() for p in probes)


_SEAL_SCRIPT = """
import sys
from pathlib import Path
from c2pabench import Bench
from agent.c2pa import SigningIdentity
from agent.evidence.age import Recipient
data, key, recipient, anchor, clip = sys.argv[1:6]
bench = Bench(Path(data), Path(key), Recipient.parse(recipient),
              SigningIdentity.load(Path(data) / "keys"), Path(anchor).read_bytes())
store = bench.store()
bench.seal(store, Path(clip).read_bytes())
store.close()
"""


def test_sealing_opens_no_file_for_writing_outside_the_evidence_paths(
        bench: Bench, clip: Path, tmp_path: Path) -> None:
    """Under strace, a whole seal with credentials (in a fresh process) opens for writing only
    the segment, its journal and manifest, the log and checkpoint, and the credential."""
    import re
    import shutil
    import subprocess
    import sys

    if shutil.which("strace") is None:
        pytest.skip("strace not installed")
    anchor = tmp_path / "anchor.pem"
    anchor.write_bytes(bench.anchor)
    trace = tmp_path / "trace"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).parent), str(Path(__file__).parents[2])])}
    run = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=open,openat,creat", "-o", str(trace),
         sys.executable, "-c", _SEAL_SCRIPT, str(bench.data), str(bench.agency_key),
         str(bench.recipient), str(anchor), str(clip)],
        check=False, capture_output=True, text=True, timeout=120, env=env)
    if run.returncode != 0 and "ptrace" in run.stderr:
        pytest.skip(f"strace cannot trace here: {run.stderr.strip()[:120]}")
    assert run.returncode == 0, run.stderr
    writes = set()
    for line in trace.read_text().splitlines():
        m = re.search(r'open(?:at)?\((?:[^,]+, )?"([^"]+)", ([A-Z_|]+)', line)
        if m and re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_APPEND", m.group(2)) and "= -1" not in line:
            writes.add(m.group(1))
    assert writes, "the trace saw no write at all: it is not tracing the seal"
    allowed = re.compile(r"(\.mp4\.age|\.open\.json|\.manifest\.json|\.c2pa|\.tmp-\d+"
                         r"|/log/entries\.bin|/log/checkpoint|/log/lock|/dev/null)$")
    outside = sorted(w for w in writes if not allowed.search(w))
    assert not outside, f"opened for writing: {outside}"
    assert any(w.endswith(".c2pa") or ".c2pa." in w for w in writes)
