"""``bodycam run --hw sim --with-station``: the whole chain on one machine, as a newcomer
runs it -- record, offload, the station verifies and stores, receipt, eviction under storage
pressure of receipted segments only, and both sides' tools agree afterwards."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.testing import wait_for
from tests.offload.bench import REPO


def _bodycam(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60, check=False)


def _status(data: Path) -> dict[str, Any] | None:
    done = _bodycam("ctl", "status", "--data-dir", str(data), "--timeout", "5")
    return json.loads(done.stdout) if done.returncode == 0 else None


def _log_types(data: Path) -> list[str]:
    done = _bodycam("verify", str(data), "--json")
    return [f["code"] for f in json.loads(done.stdout)["findings"]]


def test_with_station_runs_record_offload_receipt_evict(tmp_path: Path) -> None:
    """Segments recorded by the simulator are receipted by the loopback station; filling the
    simulated disk makes the agent evict receipted segments only; the station holds every
    segment once, verified, and verify on the device explains each missing file."""
    data = tmp_path / "evidence"
    cfg = tmp_path / "run.toml"
    cfg.write_text("[recording]\nsegment_s = 2\n[storage]\nmin_retention_h = 0\npoll_s = 0.2\n"
                   "[sim]\nstorage_quota_mb = 4000\n[video]\nwidth = 640\nheight = 360\n")
    agent = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "run", "--hw", "sim", "--with-station", "--config",
         str(cfg), "--data-dir", str(data), "--for", "90", "--no-status"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "agent.log", "wb"))  # noqa: SIM115
    try:
        wait_for(lambda: _status(data), timeout=60, what="the agent's control socket")
        assert _bodycam("ctl", "press", "--data-dir", str(data)).returncode == 0
        st = wait_for(lambda: (s := _status(data)) and s.get("offload_receipts", 0) >= 3 and s,
                      timeout=40, what="three receipts")
        assert st["offload_state"] in ("idle", "uploading")
        fill = st["storage_free_bytes"] - int(st["storage_reserve_bytes"] * 0.8)
        assert _bodycam("ctl", "sim", "storage", "fill", str(fill), "--data-dir",
                        str(data)).returncode == 0
        wait_for(lambda: "evicted" in _log_types(data), timeout=30, what="an eviction")
    finally:
        agent.send_signal(signal.SIGTERM)
        rc = agent.wait(timeout=60)
    assert rc == 0, (tmp_path / "agent.log").read_text()[-3000:]

    station = json.loads(_bodycam("station", "list", "--json", "--check", "--data-dir",
                                  str(data / "station")).stdout)["segments"]
    seqs = [s["device_seq"] for s in station]
    assert len(seqs) == len(set(seqs)) >= 3 and {s["state"] for s in station} == {"verified"}
    info = json.loads(_bodycam("station", "info", "--json", "--data-dir",
                               str(data / "station")).stdout)
    done = _bodycam("verify", str(data), "--json", "--station-key", info["receipt_key"])
    report = json.loads(done.stdout)
    assert done.returncode == 0, [f for f in report["findings"] if f["level"] == "fail"]
    evicted = [f for f in report["findings"] if f["code"] == "evicted"]
    assert evicted and len(evicted) <= len(seqs)
