#!/usr/bin/env python3
"""Start-up costs a user feels: ``bodycam ctl`` round trip and agent start → READY.

1. ``python -c pass`` and ``bodycam ctl status`` against a running agent, side by side
   (median of ``--runs``); the target is ctl ≤ 1.5× the bare interpreter.
2. ``bodycam run`` (simulated hardware, replay camera) from spawn to ``READY=1`` on a
   ``NOTIFY_SOCKET`` this script listens on -- the moment systemd would consider the recorder
   up: frames flow and the health gate passed.
3. The import-time breakdown of both entry points (``python -X importtime``), biggest
   cumulative first, so the next regression names itself.

    .venv/bin/python scripts/bench_startup.py [--runs 15] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
BODYCAM = [PY, "-c", "import sys; from agent.cli import main; sys.exit(main())"]


def _installed_env(tmp: Path) -> dict[str, str]:
    """The environment of an installed device: bytecode compiled once and reused (a wheel
    install compiles it; PYTHONDONTWRITEBYTECODE in a dev shell would recompile every module
    at every start). The cache goes to a private prefix, not into the source tree."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    return env


def _side_by_side(a: list[str], b: list[str], runs: int, env: dict[str, str]) -> dict[str, float]:
    """Wall (median) and CPU (mean) ms of commands ``a`` and ``b``, interleaved so that the
    load of a shared machine hits both alike."""
    wall: dict[str, list[float]] = {"a": [], "b": []}
    cpu = {"a": 0.0, "b": 0.0}
    for _ in range(runs):
        for key, argv in (("a", a), ("b", b)):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True, timeout=60, env=env)
            wall[key].append((time.perf_counter() - t0) * 1000)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[key] += (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000
    return {"a_wall": statistics.median(wall["a"]), "b_wall": statistics.median(wall["b"]),
            "a_cpu": cpu["a"] / runs, "b_cpu": cpu["b"] / runs}


def _clip(directory: Path) -> Path:
    path = directory / "clip.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=1920x1080:rate=30", "-t", "2", "-c:v", "libx264", "-preset",
                    "ultrafast", "-g", "30", "-bf", "0", "-b:v", "8M", "-pix_fmt", "yuv420p",
                    str(path)], check=True, timeout=120)
    return path


def importtime(code: str, env: dict[str, str], top: int = 12) -> list[tuple[str, float]]:
    """The ``top`` imports of ``code`` by cumulative time (ms), outermost first."""
    subprocess.run([PY, "-c", code], capture_output=True, check=False, timeout=120, env=env)
    err = subprocess.run([PY, "-X", "importtime", "-c", code], capture_output=True, text=True,
                         check=False, timeout=120, env=env).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cum, name = line.split("|")
            rows.append((name.rstrip(), int(cum) / 1000))
    outer = [(n.strip(), ms) for n, ms in rows if len(n) - len(n.lstrip()) <= 3]
    return sorted(outer, key=lambda r: -r[1])[:top]


def start_agent(data: Path, config: Path) -> tuple[subprocess.Popen[bytes], float, socket.socket]:
    """Spawn ``bodycam run`` and wait for READY=1; returns the process and the seconds taken."""
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = data / "notify.sock"
    notify.bind(str(path))
    notify.settimeout(60)
    env = {**_installed_env(data), "NOTIFY_SOCKET": str(path)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([*BODYCAM, "run", "--hw", "sim", "--config", str(config),
                             "--data-dir", str(data / "d")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        msg = notify.recv(4096).decode()
        if "READY=1" in msg.splitlines():
            return proc, time.perf_counter() - t0, notify


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-startup-"))
    config = tmp / "bench.toml"
    config.write_text(f'[sim]\ncamera = "replay"\nreplay = "{_clip(tmp)}"\n'
                      '[mqtt]\nenabled = false\n')
    proc, ready_s, notify = start_agent(tmp, config)
    try:
        ctl = [*BODYCAM, "ctl", "status", "--data-dir", str(tmp / "d")]
        env = _installed_env(tmp)
        subprocess.run(ctl, check=True, capture_output=True, timeout=60, env=env)  # compile
        m = _side_by_side([PY, "-c", "pass"], ctl, args.runs, env)
        bare, ctl_ms = m["a_wall"], m["b_wall"]
        from agent.command.ctl_client import ctl_request

        answers = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            ctl_request(tmp / "d", "status")
            answers.append((time.perf_counter() - t0) * 1000)
        answer_ms = statistics.median(answers)
    finally:
        proc.terminate()
        proc.wait(30)
        notify.close()
    result = {
        "python_c_pass_ms": round(bare, 1),
        "ctl_status_round_trip_ms": round(ctl_ms, 1),
        "ctl_vs_bare_python": round(ctl_ms / bare, 2),
        "python_c_pass_cpu_ms": round(m["a_cpu"], 1),
        "ctl_status_cpu_ms": round(m["b_cpu"], 1),
        "ctl_vs_bare_python_cpu": round(m["b_cpu"] / m["a_cpu"], 2),
        "agent_answer_ms": round(answer_ms, 1),
        "start_to_ready_s": round(ready_s, 2),
        "ctl_imports_ms": importtime("from agent.cli import main; import agent.command.ctl_client", env),
        "run_imports_ms": importtime("from agent.cli import main; import agent.app", env),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"python -c pass            {bare:7.1f} ms")
    print(f"bodycam ctl status        {ctl_ms:7.1f} ms   ({ctl_ms / bare:.2f}x, target <= 1.5x)")
    print(f"CPU: pass {m['a_cpu']:.1f} ms, ctl {m['b_cpu']:.1f} ms "
          f"({m['b_cpu'] / m['a_cpu']:.2f}x)")
    print(f"  of which the agent's answer {answer_ms:5.1f} ms (in-process request)")
    print(f"bodycam run -> READY=1    {ready_s * 1000:7.0f} ms")
    for title in ("ctl_imports_ms", "run_imports_ms"):
        print(f"\n{title.removesuffix('_ms').replace('_', ' ')} (cumulative ms):")
        for name, ms in result[title]:  # type: ignore[union-attr]
            print(f"  {ms:7.1f}  {name}")


if __name__ == "__main__":
    main()
