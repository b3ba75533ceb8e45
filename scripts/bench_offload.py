#!/usr/bin/env python3
"""Offloading during a 1080p30 recording: the recorder's CPU, dropped frames, throughput.

Runs the whole agent in this process on simulated hardware with ``[offload]`` pointed at a
loopback collection station (``bodycam station run`` in a child process, mutual TLS), in
three phases:

A. record ``--seconds`` with the station down: the uploader only backs off (the baseline);
B. start the station and record ``--seconds`` more: the uploader drains A's backlog at full
   rate (no ``max_rate``) while the camera runs -- the case that must not cost a frame;
C. stop recording and let the backlog drain.

The camera is the replay camera (``[sim] camera = "replay"``) playing ``--replay CLIP``, or a
10 s 1080p30 8 Mb/s clip the bench makes with ffmpeg at run time: it delivers encoded frames
like a Pi's hardware encoder, at almost no CPU. ``--camera sim`` uses the synthetic camera
instead (libx264 in software: on a small machine that alone can drop frames).

Reports, for A and B: the agent's CPU per recorded minute (process CPU minus the simulator's
capture threads, as scripts/bench_recording.py does), the ``offload`` thread's own CPU
(from /proc), frames dropped and gaps (must be 0), the controller queue's high-water mark;
then the uploader's throughput while busy (bytes sent / time in state ``uploading``,
finalising included) beside ``curl`` sending the same segment files to the same station in
one tus PATCH each, and our client sending them in the uploader's 1 MiB checksummed PATCHes.

    .venv/bin/python scripts/bench_offload.py [--seconds 30] [--replay clip.mp4] [--live]
                                              [--camera sim]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from agent.app import Agent
from agent.config import parse_config
from agent.evidence.keys import DeviceKey
from agent.offload.loopback import LoopbackStation
from agent.station.api_client import StationClient

TICK = os.sysconf("SC_CLK_TCK")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _thread_cpu(name: str) -> float:
    """CPU seconds of the live thread called ``name`` (0 if none)."""
    for t in threading.enumerate():
        if t.name == name and t.native_id is not None:
            try:
                fields = Path(f"/proc/self/task/{t.native_id}/stat").read_text()
            except OSError:
                return 0.0
            rest = fields.rsplit(")", 1)[1].split()
            return (int(rest[11]) + int(rest[12])) / TICK
    return 0.0


def _make_clip(path: Path, width: int, height: int) -> Path:
    """10 s of 30 fps H.264 at 8 Mb/s, one keyframe a second (what a Pi's encoder makes)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=size={width}x{height}:rate=30", "-t", "10", "-c:v",
                        "libx264", "-preset", "veryfast", "-g", "30", "-b:v", "8M", "-pix_fmt",
                        "yuv420p", str(path)], check=True)
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Phase:
    """CPU, drops and offload progress over one phase of the recording."""

    def __init__(self, agent: Agent) -> None:
        self.a = agent
        cam, mic = agent.hw.camera, agent.hw.microphone
        assert cam is not None and mic is not None
        self.cam, self.mic = cam, mic
        self.t0, self.cpu0 = time.monotonic(), _cpu()
        self.sim0 = self._sim()
        self.off0 = _thread_cpu("offload")
        self.drop0, self.gap0 = cam.frames_dropped, agent.recorder.frames_gap

    def _sim(self) -> float:
        return float(getattr(self.cam, "cpu_seconds", 0.0)) + float(
            getattr(self.mic, "cpu_seconds", 0.0))

    def result(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        sim = self._sim() - self.sim0
        agent_cpu = _cpu() - self.cpu0 - sim
        return {"seconds": round(wall, 1),
                "agent_cpu_s_per_recorded_min": round(agent_cpu / wall * 60, 2),
                "agent_share_of_one_core": round(agent_cpu / wall, 3),
                "offload_thread_cpu_s_per_min": round(
                    (_thread_cpu("offload") - self.off0) / wall * 60, 2),
                "frames_dropped": self.cam.frames_dropped - self.drop0,
                "frames_gap": self.a.recorder.frames_gap - self.gap0,
                "controller_queue_max": self.a.controller.max_queue}


def _curl(url: str, upload: str, media: Path, pki: Path, device: str) -> None:
    subprocess.run(["curl", "-sS", "--fail", "-X", "PATCH", "-T", str(media),
                    "--cacert", str(pki / "ca.crt"), "--cert", str(pki / f"{device}.crt"),
                    "--key", str(pki / f"{device}.key"), "-H", "Tus-Resumable: 1.0.0",
                    "-H", "Upload-Offset: 0", "-H",
                    "Content-Type: application/offset+octet-stream", "-H", "Expect:",
                    "-o", "/dev/null", url + upload], check=True)


def _transport(station: LoopbackStation, device: str, media: list[Path]) -> dict[str, float]:
    """MB/s of curl (one PATCH per file) and of our client in 1 MiB checksummed PATCHes,
    interleaved file by file on the same station (new uploads, never finalised)."""
    pki = station.pki
    client = StationClient(station.url, cafile=str(pki / "ca.crt"),
                           certfile=str(pki / f"{device}.crt"),
                           keyfile=str(pki / f"{device}.key"), chunk_bytes=1 << 20)
    spent = {"curl": 0.0, "client": 0.0}
    total = 0
    for path in media:
        data = path.read_bytes()
        total += len(data)
        up = client.create_upload(device, len(data))
        t = time.perf_counter()
        _curl(station.url, up, path, pki, device)
        spent["curl"] += time.perf_counter() - t
        up = client.create_upload(device, len(data))
        t = time.perf_counter()
        for i in range(0, len(data), 1 << 20):
            client.patch(up, i, data[i:i + (1 << 20)])
        spent["client"] += time.perf_counter() - t
    client.close()
    return {k: round(total / v / 1e6, 1) for k, v in spent.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--replay", type=Path, help="H.264 clip for the replay camera (default: "
                    "made with ffmpeg)")
    ap.add_argument("--camera", choices=("replay", "sim"), default="replay")
    ap.add_argument("--live", action="store_true", help="[offload] live = true")
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args()
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-offload-"))
    raw: dict[str, Any] = {
        "video": {"width": args.width, "height": args.height},
        "recording": {"prerecord_s": 5, "segment_s": 10}, "power": {"poll_s": 1.0},
        "storage": {"min_retention_h": 24}}
    if args.camera == "replay":
        clip = args.replay or _make_clip(data / "clip.mp4", args.width, args.height)
        raw["sim"] = {"camera": "replay", "replay": str(clip)}
    cfg = parse_config(raw)
    device = cfg.device.id
    key_path = data / "keys" / "device.key"
    key = DeviceKey.load(key_path) if key_path.exists() else DeviceKey.generate(key_path)
    port = _free_port()
    station = LoopbackStation(data / "station", device, port=port, max_upload_bytes=1 << 34,
                              min_free_bytes=0, max_uploads_per_device=1000)
    station.prepare(key)
    station.url = f"https://127.0.0.1:{port}"
    offload = station.offload_config(cfg.offload, station.receipt_key())
    cfg = dataclasses.replace(cfg, offload=dataclasses.replace(offload, live=args.live,
                                                               retry_s=1.0))
    agent = Agent(cfg, data_dir=data, hw_kind="sim")
    agent.start()
    off = agent.offloader
    assert off is not None
    result: dict[str, Any] = {"resolution": f"{args.width}x{args.height}@30",
                              "camera": args.camera if args.camera == "replay"
                              else "sim (its threads subtracted)",
                              "live": args.live}
    try:
        time.sleep(5)  # pre-roll
        agent.controller.call("start")
        a = Phase(agent)
        time.sleep(args.seconds)
        result["A_station_down"] = {**a.result(), "backlog": off.status().backlog,
                                    "backlog_mb": round(off.status().backlog_bytes / 1e6, 1)}
        station.start()
        sent0, busy, t_start = off.status().bytes_sent, 0.0, time.monotonic()
        b = Phase(agent)
        end = time.monotonic() + args.seconds
        last = time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.05)
            now = time.monotonic()
            if off.status().state == "uploading":
                busy += now - last
            last = now
        result["B_offloading_full_rate"] = {**b.result(),
                                            "bytes_sent_mb": round((off.status().bytes_sent
                                                                    - sent0) / 1e6, 1)}
        agent.controller.call("stop")
        while off.status().backlog > 0 or agent.recorder.state != "standby":
            time.sleep(0.05)
            now = time.monotonic()
            if off.status().state == "uploading":
                busy += now - last
            last = now
        drained = time.monotonic() - t_start
        sent = off.status().bytes_sent - sent0
        result["C_drain"] = {"seconds_from_station_up_to_empty_backlog": round(drained, 1),
                             "receipts": off.status().receipts,
                             "offload_busy_mb_s": round(sent / max(busy, 1e-6) / 1e6, 1)}
    finally:
        agent.shutdown()
    media = sorted((data / "recordings").glob("*/*.mp4.age"))
    if shutil.which("curl") is not None:
        station.stop()
        station.start()
        result["transport_mb_s_same_files"] = _transport(station, device, media)
    station.stop()
    result["data_dir"] = str(data)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
