"""Bench fixtures: small simulated units (640x360, 5 s segments) and their ground truth.

The ground truth of a run comes from the camera's own frame indices in the signed manifests
(``first_index``/``last_index``/``frames``), which the bench never reads, so a bench figure
can be checked against something it did not compute.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.bench.bench_cli import DEFAULT_SPECS
from agent.bench.progress import Progress
from agent.bench.run import BenchOptions, run_bench
from agent.bench.spec import load_spec

SMALL = """
[recording]
prerecord_s = 5
segment_s = 5
[video]
width = 640
height = 360
fps = 25
bitrate = 800_000
gop = 25
[gps]
stale_after_s = 5.0
[sim]
clapper_s = 2.0
"""
FPS = 25
FRAME_US = 1_000_000 // FPS
PRERECORD_S = 5


def small_config(tmp: Path) -> Path:
    """The reduced unit configuration every bench test uses."""
    path = tmp / "small.toml"
    path.write_text(SMALL)
    return path


def bench(tmp: Path, *, minutes: float, faults: list[str], crash: bool = False,
          rundown: bool = False) -> dict[str, Any]:
    """Run the bench on a small simulated unit; returns report.json as a dict."""
    opts = BenchOptions(hw="sim", minutes=minutes, specs=[load_spec(p) for p in DEFAULT_SPECS],
                        config=small_config(tmp), report_dir=tmp / "report", faults=faults,
                        crash=crash, rundown=rundown)
    run_bench(opts, Progress(quiet=True))
    doc: dict[str, Any] = json.loads((tmp / "report" / "report.json").read_text())
    return doc


def figure(doc: dict[str, Any], name: str) -> Any:
    """One measured figure's value."""
    return doc["figures"][name]["value"]


def manifests(doc: dict[str, Any], recording_id: str | None = None) -> list[dict[str, Any]]:
    """The signed manifests of the run's main recording (first recording when not named)."""
    root = Path(doc["meta"]["data_dir"]) / "recordings"
    found = [json.loads(p.read_text())["manifest"] for p in sorted(root.glob("*/*.manifest.json"))]
    rid = recording_id or min(found, key=lambda m: m["start"]["mono_us"])["recording_id"]
    return sorted((m for m in found if m["recording_id"] == rid), key=lambda m: m["seq"])


def truth_missing_frames(ms: list[dict[str, Any]]) -> int:
    """Frames the camera numbered but the recording does not hold (from frame indices)."""
    first, last = ms[0]["media"]["video"]["first_index"], ms[-1]["media"]["video"]["last_index"]
    return int(last - first + 1 - sum(m["media"]["frames"] for m in ms))


def truth_gaps_ms(ms: list[dict[str, Any]]) -> list[float]:
    """Media missing at each roll, from the manifests' own timestamps."""
    out = []
    for a, b in itertools.pairwise(ms):
        gap = b["media"]["video"]["first_pts_us"] - (a["media"]["video"]["last_pts_us"] + FRAME_US)
        out.append(max(0, gap) / 1000)
    return out


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A temporary directory shared by one module's runs."""
    yield tmp_path_factory.mktemp("bench")
