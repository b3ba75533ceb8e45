"""Power cuts under the whole agent: what a cut loses, measured from the evidence itself.

Each cycle mounts the power-cut file system (:mod:`tests.tools.dropfs`) over the device's
disk, starts ``bodycam run --hw sim`` with its data directory there (recovering what the last
cut left), waits for the pre-event buffer to fill, starts a recording and cuts the power --
either 0.5 s after the press (the pre-roll was just written in one burst) or at a random
moment. A cut is SIGKILL of the agent followed by the file system's cut: every write and every
directory entry not yet fsynced is gone, as on real storage.

At the end the agent starts once more (recovering the last cut), stops cleanly, and the
series reports:

* sealed segments lost -- a segment whose manifest was sealed (no journal left) at the
  instant of a cut must come back byte for byte: must be 0;
* media lost per cut -- the monotonic time of the cut minus the end of the last playable
  frame of that recording (decrypted with the bench identity, ffprobed), mean and max;
* pre-roll lost after a press -- of the pre-event media held at the press, what did not
  survive a cut 0.5 s later;
* manifests missing from the outbox -- every manifest on disk must be queued for the back
  office (no broker listens, so the durable outbox keeps everything): must be 0;
* ``bodycam verify`` of the data directory: must pass.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.command.ctl_server import ctl_request
from agent.evidence.journal import JOURNAL_SUFFIX, MANIFEST_SUFFIX
from tests.recording.agent_process import start_agent
from tests.recording.evidence_tools import manifests, playable_end_us
from tests.tools.dropfs import DroppingFs

__all__ = ["Cut", "SeriesReport", "config_text", "run_series"]

AFTER_PRESS_S = 0.5


def config_text(*, prerecord_s: int = 3, segment_s: int = 4, sync_interval_s: float = 1.0) -> str:
    """A small recorder (320×240 at 2 Mbit/s, 1 s GOP) with an outbox but no reachable broker.

    The pre-roll is shorter than a segment (as on a device: 30 s and 60 s), so it sits in one
    open segment after the press instead of being sealed by a roll during the burst.
    """
    return f"""
[video]
width = 320
height = 240
bitrate = 2000000
[recording]
prerecord_s = {prerecord_s}
segment_s = {segment_s}
sync_interval_s = {sync_interval_s}
[gps]
source = "none"
[mqtt]
enabled = true
url = "mqtt://127.0.0.1:9"
allow_plaintext = true
"""


@dataclass
class Cut:
    """One power cut and what was on the disk just before it."""

    mode: str  # "after-press" or "random"
    recording_id: str
    press_us: int
    cut_us: int
    sealed: dict[str, str]  # manifest path (relative to the data dir) -> sha256, at the cut
    media_lost_s: float | None = None
    preroll_lost_s: float | None = None


@dataclass
class SeriesReport:
    """The figures of one series."""

    cuts: list[Cut] = field(default_factory=list)
    sealed_lost: list[str] = field(default_factory=list)
    outbox_missing: list[int] = field(default_factory=list)
    outbox_duplicates: int = 0
    segments: int = 0
    recovered: int = 0
    verify_rc: int | None = None
    verify_output: str = ""

    @property
    def media_lost(self) -> list[float]:
        """Seconds lost per cut."""
        return [c.media_lost_s for c in self.cuts if c.media_lost_s is not None]

    @property
    def preroll_lost(self) -> list[float]:
        """Seconds of pre-roll lost per cut 0.5 s after a press."""
        return [c.preroll_lost_s for c in self.cuts if c.preroll_lost_s is not None]

    def summary(self) -> str:
        """Plain-language figures."""
        def stats(xs: list[float]) -> str:
            if not xs:
                return "n/a"
            return f"mean {statistics.mean(xs):.2f} s, max {max(xs):.2f} s (n={len(xs)})"
        lines = [
            f"power cuts: {len(self.cuts)} "
            f"({sum(c.mode == 'after-press' for c in self.cuts)} of them "
            f"{AFTER_PRESS_S} s after a press)",
            f"segments: {self.segments} sealed in all, {self.recovered} recovered after a cut",
            f"sealed segments lost: {len(self.sealed_lost)}"
            + (f" ({', '.join(self.sealed_lost)})" if self.sealed_lost else ""),
            f"media lost per cut: {stats(self.media_lost)}",
            f"pre-roll lost after a press: {stats(self.preroll_lost)}",
            f"manifests missing from the outbox: {len(self.outbox_missing)}"
            + (f" (device_seq {self.outbox_missing})" if self.outbox_missing else "")
            + f"; queued twice: {self.outbox_duplicates}",
            f"bodycam verify: {'passed' if self.verify_rc == 0 else f'FAILED (rc {self.verify_rc})'}",
        ]
        return "\n".join(lines)

    @property
    def ok(self) -> bool:
        """No sealed segment lost, every manifest queued, verify passed."""
        return not self.sealed_lost and not self.outbox_missing and self.verify_rc == 0


def run_series(work: Path, *, cuts: int, seed: int = 947, after_press_every: int = 3,
               config: str | None = None, prerecord_s: int = 3,
               log: Any = None) -> SeriesReport:
    """Run ``cuts`` power cuts in ``work`` (disk/, mnt/) and measure what they lost.

    Every ``after_press_every``-th cut (starting with the first) comes 0.5 s after the press;
    the others at a random moment 0.6-6 s after it (across segment rolls and seals).
    """
    rng = random.Random(seed)
    cfg = work / "agent.toml"
    cfg.write_text(config or config_text(prerecord_s=prerecord_s))
    fs = DroppingFs(work / "disk", work / "mnt")
    (work / "disk" / "data").mkdir(parents=True, exist_ok=True)  # provisioned with the device
    data = fs.mountpoint / "data"
    report = SeriesReport()
    proc: subprocess.Popen[bytes] | None = None
    try:
        for i in range(cuts):
            after_press = i % after_press_every == 0
            fs.mount()
            proc = start_agent(cfg, data)
            _await_preroll(data, prerecord_s)
            press_us = time.monotonic_ns() // 1000
            answer = ctl_request(data, "start")
            assert answer.get("ok"), answer
            delay = AFTER_PRESS_S if after_press else rng.uniform(0.6, 6.0)
            time.sleep(max(0.0, press_us / 1e6 + delay - time.monotonic()))  # the cut's moment
            cut_us = time.monotonic_ns() // 1000
            proc.send_signal(signal.SIGKILL)  # the power goes: the process and ...
            proc.wait(timeout=30)
            proc = None
            sealed = _sealed_manifests(data)
            fs.cut()  # ... everything not yet on the disk
            report.cuts.append(Cut("after-press" if after_press else "random",
                                   answer["result"]["recording_id"], press_us, cut_us, sealed))
            if log:
                log(f"cut {i + 1}/{cuts}: {report.cuts[-1].mode}, "
                    f"{(cut_us - press_us) / 1e6:.2f} s after the press")
        fs.mount()
        proc = start_agent(cfg, data)  # recovers the last cut
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, proc.stderr.read().decode() if proc.stderr else ""
        proc = None
        fs.stop()
    finally:  # a failed step must not leave an agent running or a file system mounted
        if proc is not None:
            proc.kill()
            proc.wait(timeout=30)
        if fs.mounted:
            fs.cut()
    _measure(report, work / "disk" / "data", work / "scratch", prerecord_s)
    return report


def _await_preroll(data: Path, seconds: float, timeout: float = 30.0) -> None:
    """Wait until the pre-event ring holds ``seconds`` of media (it fills from camera start)."""
    deadline = time.monotonic() + timeout
    while ctl_request(data, "status")["result"].get("preroll_s", 0) < seconds - 0.1:
        if time.monotonic() > deadline:
            raise AssertionError(f"pre-event buffer did not reach {seconds} s")
        time.sleep(0.1)


def _sealed_manifests(data: Path) -> dict[str, str]:
    """Manifests on disk whose journal is gone: sealed (logged) segments, by content hash."""
    out = {}
    for env in (data / "recordings").glob(f"*/*{MANIFEST_SUFFIX}"):
        journal = env.with_name(env.name.removesuffix(MANIFEST_SUFFIX) + JOURNAL_SUFFIX)
        if not journal.exists():
            out[env.relative_to(data).as_posix()] = hashlib.sha256(env.read_bytes()).hexdigest()
    return out


def _measure(report: SeriesReport, data: Path, scratch: Path, prerecord_s: int) -> None:
    scratch.mkdir(exist_ok=True)
    for cut in report.cuts:
        for rel, digest in cut.sealed.items():
            path = data / rel
            if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                report.sealed_lost.append(rel)
    ms = manifests(data)
    report.segments = len(ms)
    report.recovered = sum("recovered" in m["flags"] for m in ms)
    ident = data / "sim-agency.key"
    ends: dict[str, list[int]] = {}
    starts: dict[str, int] = {}
    for m in ms:
        rid = m["recording_id"]
        starts[rid] = min(starts.get(rid, m["start"]["mono_us"]), m["start"]["mono_us"])
        end = playable_end_us(m, ident, scratch / f"s{m['device_seq']}.mp4")
        if end is not None:
            ends.setdefault(rid, []).append(end)
    for cut in report.cuts:
        floor = starts.get(cut.recording_id, cut.press_us - prerecord_s * 1_000_000)
        best = max([floor, *ends.get(cut.recording_id, [])])
        cut.media_lost_s = (cut.cut_us - best) / 1e6
        if cut.mode == "after-press":
            held = min(best, cut.press_us)
            cut.preroll_lost_s = max(0.0, (cut.press_us - held) / 1e6)
    _check_outbox(report, data, ms)
    res = subprocess.run([sys.executable, "-m", "agent.cli", "verify", str(data)],
                         capture_output=True, text=True, timeout=300, check=False)
    report.verify_rc = res.returncode
    report.verify_output = (res.stdout + res.stderr)[-4000:]


def _check_outbox(report: SeriesReport, data: Path, ms: list[dict[str, Any]]) -> None:
    db = sqlite3.connect(f"file:{data / 'state' / 'outbox.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT payload FROM outbox WHERE kind = 'segment'").fetchall()
    finally:
        db.close()
    queued: dict[str, int] = {}
    for (payload,) in rows:
        key = json.dumps(json.loads(payload)["manifest"], sort_keys=True)
        queued[key] = queued.get(key, 0) + 1
    for m in ms:
        body = {k: v for k, v in m.items() if k != "_path"}
        n = queued.get(json.dumps(body, sort_keys=True), 0)
        if n == 0:
            report.outbox_missing.append(m["device_seq"])
        report.outbox_duplicates += max(0, n - 1)


def main(argv: list[str] | None = None) -> int:
    """``scripts/powercut.py [--cuts N] [--seed S] [--work DIR]``."""
    import argparse
    import tempfile

    p = argparse.ArgumentParser(prog="powercut", description=__doc__.split("\n\n")[0])
    p.add_argument("--cuts", type=int, default=15)
    p.add_argument("--seed", type=int, default=947)
    p.add_argument("--work", type=Path, default=None, help="keep the disk here (default: temp)")
    a = p.parse_args(argv)
    if a.work is not None:
        a.work.mkdir(parents=True, exist_ok=True)
        work = a.work
    else:
        work = Path(tempfile.mkdtemp(prefix="powercut-"))
    report = run_series(work, cuts=a.cuts, seed=a.seed, log=lambda s: print(s, flush=True))
    print(report.summary())
    if report.verify_rc != 0:
        print(report.verify_output)
    print(f"disk image: {work / 'disk'}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
