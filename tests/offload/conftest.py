"""Fixtures of the offload suite: a device and a loopback station per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.offload.bench import OffloadBench


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[OffloadBench]:
    b = OffloadBench(tmp_path)
    yield b
    b.close()
