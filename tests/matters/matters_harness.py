"""Test helpers: synthetic segment manifests shaped like the recorder's, and a sim agent.

The manifests carry exactly the fields coverage reads (seq, start/end, media, flags,
bookmarks, matter), with the timing the recorder produces: each segment starts at the
monotonic instant the previous one ended, and its first video pts is that instant.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.command.ctl_server import CtlUnavailable, ctl_request
from agent.matters import MatterCatalogue

REPO = Path(__file__).resolve().parents[2]
T0_MONO = 5_000_000_000
T0_UTC = datetime(2026, 11, 27, 4, 0, 0, tzinfo=UTC)
FPS = 30
FRAME_US = 33_334
SEG_US = 3_000_000


def utc(mono_us: int) -> str:
    return (T0_UTC + timedelta(microseconds=mono_us - T0_MONO)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry(code: str) -> dict[str, Any]:
    """The matter as a manifest records it (the recorder drops checklist_codes)."""
    e = MatterCatalogue.load().lookup(code)
    e.pop("checklist_codes")
    return e


def manifest(seq: int, *, start: int | None = None, length: int = SEG_US,
             matter: dict[str, Any] | None = None, bookmarks: list[dict[str, Any]] | None = None,
             flags: list[str] | None = None, missing_frames: int = 0, pts_shift: int = 0,
             recording_id: str = "rec1") -> dict[str, Any]:
    """One segment manifest; ``start`` defaults to back-to-back with the previous seq."""
    s = T0_MONO + seq * SEG_US if start is None else start
    e = s + length
    all_flags = list(flags or [])
    if matter is None:
        all_flags.append("uncategorised")
    return {
        "recording_id": recording_id, "seq": seq, "device_seq": seq,
        "start": {"utc": utc(s), "mono_us": s}, "end": {"utc": utc(e), "mono_us": e},
        "media": {"container": "mp4-frag", "duration_us": length,
                  "video": {"codec": "h264", "fps": FPS, "first_pts_us": s + pts_shift,
                            "last_pts_us": e - FRAME_US, "missing_frames": missing_frames},
                  "audio": {"codec": "aac", "sample_rate": 48_000}},
        "matter": matter, "flags": all_flags, "bookmarks": list(bookmarks or []),
    }


def mark(item: str, at_us: int, seg_start: int) -> dict[str, Any]:
    """A checklist bookmark as ``bodycam ctl mark`` makes it (``at_us`` monotonic)."""
    return {"label": f"checklist:{item}", "item": item, "mono_us": at_us,
            "offset_us": at_us - seg_start}


def change(code: str, at_us: int, seg_start: int) -> dict[str, Any]:
    """The bookmark a mid-recording matter change leaves."""
    return {"label": f"matter:{code}", "mono_us": at_us, "offset_us": at_us - seg_start}


def seg_start(seq: int) -> int:
    return T0_MONO + seq * SEG_US


def write_recording(root: Path, manifests: list[dict[str, Any]], name: str = "rec") -> Path:
    """Lay manifests out as the store does: ``recordings/<dir>/<stem>.manifest.json``."""
    d = root / "recordings" / name
    d.mkdir(parents=True, exist_ok=True)
    for m in manifests:
        envelope = {"manifest": m, "signature": {"alg": "ed25519", "sig": "unchecked-here"}}
        (d / f"seg_{m['seq']:05d}.manifest.json").write_text(json.dumps(envelope, ensure_ascii=False))
    return d


# --- a real simulated agent -----------------------------------------------------------------
AGENT_CONFIG = """
[video]
width = 640
height = 360
fps = 15
gop = 15
bitrate = 400000
overlay = false
[audio]
bitrate = 32000
[recording]
prerecord_s = 2
segment_s = 3
double_press_s = 1.0
stop_hold_s = 0.6
reminder_s = 0
[matters]
quick_list = {quick}
"""



class SimAgent:
    """``bodycam run --hw sim`` in a subprocess, driven through its control socket."""

    def __init__(self, workdir: Path, *, quick_list: list[str], extra_config: str = "") -> None:
        self.data_dir = workdir / "data"
        self.config = workdir / "bodycam.toml"
        self.config.write_text(AGENT_CONFIG.format(quick=json.dumps(quick_list)) + extra_config)
        self.log = workdir / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "run", "--hw", "sim", "--config", str(self.config),
                 "--data-dir", str(self.data_dir), "--for", "120"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(CtlUnavailable, OSError):
                if ctl_request(self.data_dir, "status", timeout=5).get("ok"):
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agent did not come up:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def ctl(self, cmd: str, **args: Any) -> dict[str, Any]:
        return ctl_request(self.data_dir, cmd, args, timeout=40)

    def ok(self, cmd: str, **args: Any) -> dict[str, Any]:
        reply = self.ctl(cmd, **args)
        assert reply.get("ok"), f"{cmd} {args}: {reply}"
        return dict(reply["result"])

    def wait_state(self, state: str, timeout: float = 20.0) -> dict[str, Any]:
        """Wait for the recorder's ``state``; ``standby`` also waits for the stop's seals
        (the state changes when the stop is decided; the segment worker seals after it)."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.ok("status")
            if snap.get("state") == state and (state != "standby" or snap["file_backlog"] == 0):
                return snap
            if time.monotonic() > deadline:
                raise AssertionError(f"state stayed {snap.get('state')!r}, wanted {state!r}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def manifests(self) -> list[dict[str, Any]]:
        out = []
        for f in sorted((self.data_dir / "recordings").rglob("*.manifest.json")):
            out.append(json.loads(f.read_bytes())["manifest"])
        return out


@contextlib.contextmanager
def sim_agent(workdir: Path, **kw: Any) -> Iterator[SimAgent]:
    agent = SimAgent(workdir, **kw)
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()
