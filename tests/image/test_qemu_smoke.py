"""Opt-in: the installed recorder boots under full-system arm64 emulation, records, verifies.

Deselected by default (marker ``qemu``); run with ``pytest -m qemu tests/image`` as root on a
machine with debootstrap, qemu-system-aarch64 and network access to a Debian mirror and PyPI.
The layers are cached in image-build/work/cache: a cold run takes 20-40 minutes, a warm one a
few. See image-build/qemu-smoke.sh.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "image-build" / "qemu-smoke.sh"


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.timeout(5400)
@pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap needs root")
@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("debootstrap", "qemu-system-aarch64", "cpio", "sfdisk")),
    reason="needs debootstrap, qemu-system-arm, cpio and fdisk",
)
def test_service_reaches_ready_records_and_verifies_under_qemu(tmp_path: Path) -> None:
    """In simulator mode the real units provision the device, reach READY and record; the
    recording verifies inside the arm64 guest, plaintext included, and the report comes out."""
    result = subprocess.run(
        [str(SCRIPT), "--work", str(tmp_path / "qemu"), "--timeout", "2400"],
        env=dict(os.environ, PYTHON=sys.executable),
        capture_output=True,
        text=True,
        check=False,
        timeout=5300,
    )
    console = tmp_path / "qemu" / "console.log"
    tail = console.read_text(errors="replace")[-4000:] if console.exists() else result.stderr
    assert result.returncode == 0, tail
    assert "BODYCAM-SMOKE: T READY" in result.stdout
    assert "BODYCAM-SMOKE: T first segment sealed" in result.stdout
    assert "BODYCAM-SMOKE: PASS" in result.stdout
    assert "qemu-smoke: timeline" in result.stdout
    report = json.loads((tmp_path / "qemu" / "verify.json").read_text())
    assert report["ok"] is True
    assert report["summary"]["failures"] == 0
    assert report["segments"] >= 1
