"""Bench for the Content Credentials tests: a stock age key, a device key, a run-time test CA
issuing the device's C2PA certificate, and a real fragmented MP4 made by ffmpeg."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from c2pabench import Bench

from agent.c2pa import ensure_sim_identity
from agent.evidence.age import Identity, Recipient
from agent.evidence.keys import DeviceKey


def _need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")


@pytest.fixture(scope="session")
def agency_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Recipient]:
    """An agency identity made by the stock age-keygen."""
    _need("age-keygen")
    path = tmp_path_factory.mktemp("agency") / "agency.key"
    subprocess.run(["age-keygen", "-o", str(path)], check=True, capture_output=True)
    return path, Identity.from_file(path.read_text())[0].recipient


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two seconds of ffmpeg's test pattern, H.264 in a fragmented MP4 like our segments."""
    _need("ffmpeg")
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=15",
         "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
         "-g", "15", "-movflags", "frag_keyframe+empty_moov+default_base_moof", str(path)],
        check=True, capture_output=True, timeout=60)
    return path


@pytest.fixture
def bench(tmp_path: Path, agency_key: tuple[Path, Recipient]) -> Bench:
    """A data directory whose device has an evidence key and a test-CA C2PA certificate."""
    data = tmp_path / "data"
    DeviceKey.generate(data / "keys" / "device.key")
    identity, anchor = ensure_sim_identity(data, "BC-0001")
    return Bench(data, agency_key[0], agency_key[1], identity, anchor)
