"""Opt-in: the installed recorder boots under full-system arm64 emulation and records.

Deselected by default (marker ``qemu``); run with ``pytest -m qemu tests/image`` as root on a
machine with debootstrap, qemu-system-aarch64 and network access to a Debian mirror and PyPI.
Takes 20-60 minutes. See image-build/qemu-smoke.sh.
"""

from __future__ import annotations

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
def test_service_reaches_ready_and_records_under_qemu(tmp_path: Path) -> None:
    """In simulator mode the real units provision the device, reach READY and record."""
    result = subprocess.run(
        [str(SCRIPT), "--work", str(tmp_path / "qemu"), "--timeout", "4800"],
        env=dict(os.environ, PYTHON=sys.executable),
        capture_output=True,
        text=True,
        check=False,
        timeout=5300,
    )
    console = tmp_path / "qemu" / "console.log"
    tail = console.read_text(errors="replace")[-4000:] if console.exists() else result.stderr
    assert result.returncode == 0, tail
    assert "BODYCAM-SMOKE: READY reached" in result.stdout
    assert "BODYCAM-SMOKE: PASS" in result.stdout
