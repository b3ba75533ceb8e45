"""The unit under test, driven only through its control socket.

:class:`SimUnit` runs ``bodycam run --hw sim`` as a child process with a bench-written config
(so a lab can see exactly what was tested) and can SIGKILL it to test crash recovery.
:class:`ServiceUnit` is a recorder already running as a service (a Pi, data dir
``/var/lib/bodycam``): the bench cannot restart it, so a power cut is asked of the operator.

:class:`StatusSampler` polls ``status`` on its own thread and keeps the series the report
plots (battery, clock, CPU, temperature). Locking: ``_lock`` guards the sample list; the
sampler thread appends, the bench thread copies.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path
from typing import Any, TextIO

from agent.command.ctl_server import CtlUnavailable, ctl_request
from hw.errors import BodycamError, ConfigError

__all__ = ["BenchError", "ServiceUnit", "SimUnit", "StatusSampler", "Unit", "write_config"]


class BenchError(BodycamError, RuntimeError):
    """The bench could not drive the unit (it did not start, answer or record)."""


def write_config(base: Path | None, overrides: dict[str, dict[str, Any]], dest: Path) -> dict[
        str, dict[str, Any]]:
    """Write ``base`` (TOML) with ``overrides`` applied to ``dest``; return the merged tables."""
    doc: dict[str, dict[str, Any]] = {}
    if base is not None:
        try:
            doc = tomllib.loads(Path(base).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {base}: {exc}") from exc
    for section, values in overrides.items():
        doc.setdefault(section, {}).update(values)
    lines = ["# written by bodycam bench: the configuration of the unit under test"]
    for section, values in doc.items():
        lines.append(f"\n[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in values.items())
    dest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return doc


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {v!r} to TOML")


class Unit:
    """What the scenarios need from a recorder: its data dir and its control socket."""

    kind = "unit"
    data_dir: Path

    def ctl(self, cmd: str, args: dict[str, Any] | None = None, *, timeout: float = 30.0
            ) -> dict[str, Any]:
        """Send a request; return its result or raise :class:`BenchError` naming the refusal."""
        reply = ctl_request(self.data_dir, cmd, args, timeout=timeout)
        if not reply.get("ok"):
            raise BenchError(f"unit refused {cmd}: {reply.get('error')}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    def status(self) -> dict[str, Any]:
        """One status snapshot."""
        return self.ctl("status", timeout=10.0)

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the control socket answers a status request."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                return self.status()
            except (CtlUnavailable, BenchError, OSError, ValueError) as exc:
                last = exc
            time.sleep(0.2)
        raise BenchError(f"the unit did not answer within {timeout:.0f} s ({last})")

    def _check_alive(self) -> None:
        """Raise if the unit is known to be gone (a child that exited)."""

    def pid(self) -> int | None:
        """Process id of the agent when the bench knows it (CPU sampling)."""
        return None


class SimUnit(Unit):
    """A simulated recorder run by the bench as a child process."""

    kind = "sim"

    def __init__(self, config: Path, data_dir: Path, log: Path) -> None:
        self.config = config
        self.data_dir = data_dir
        self.log_path = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: TextIO | None = None

    def start(self) -> None:
        """Start the agent (again, after a kill, on the same data dir)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 -- lives with the child
        cmd = [sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main())",
               "run", "--hw", "sim", "--config", str(self.config), "--data-dir",
               str(self.data_dir), "--no-status"]
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise BenchError(f"the simulated unit exited with code {self._proc.returncode}; "
                             f"see {self.log_path}")

    def pid(self) -> int | None:
        """Process id of the running agent."""
        return self._proc.pid if self._proc is not None else None

    def kill(self) -> None:
        """SIGKILL: the power cut of a simulated unit."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)
        self._close_log()

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._close_log()
        return self._proc.returncode

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class ServiceUnit(Unit):
    """A recorder already running as a service; the bench only talks to it."""

    kind = "pi"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir


class StatusSampler:
    """Polls ``status`` every ``period_s`` on a thread; adds CPU load and SoC temperature."""

    def __init__(self, unit: Unit, period_s: float = 0.5) -> None:
        self._unit = unit
        self._period = period_s
        self._lock = threading.Lock()
        self._samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cpu_prev: tuple[float, float] | None = None

    def start(self) -> None:
        """Start sampling."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="bench-status", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (the samples stay)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def samples(self) -> list[dict[str, Any]]:
        """A copy of every sample so far."""
        with self._lock:
            return list(self._samples)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            with contextlib.suppress(CtlUnavailable, BenchError, OSError, ValueError):
                snap = self._unit.status()
                snap["t"] = t
                cpu = self._cpu_pct(t)
                if cpu is not None:
                    snap["cpu_pct"] = cpu
                temp = _soc_temp_c()
                if temp is not None:
                    snap["soc_temp_c"] = temp
                with self._lock:
                    self._samples.append(snap)
            self._stop.wait(self._period)

    def _cpu_pct(self, now: float) -> float | None:
        """CPU used by the agent process (sim) or the whole machine (service), in % of one core."""
        pid = self._unit.pid()
        ticks = _proc_ticks(pid)
        if ticks is None:
            return None
        prev, self._cpu_prev = self._cpu_prev, (now, ticks)
        if prev is None or now <= prev[0] or ticks < prev[1]:  # first sample, or a new process
            return None
        hz = os.sysconf("SC_CLK_TCK")
        return round(100.0 * (ticks - prev[1]) / hz / (now - prev[0]), 1)


def _proc_ticks(pid: int | None) -> float | None:
    try:
        if pid is not None:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return float(int(fields[11]) + int(fields[12]))  # utime + stime
        cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        return float(sum(int(x) for x in cpu) - int(cpu[3]) - int(cpu[4]))  # busy ticks
    except (OSError, IndexError, ValueError):
        return None


def _soc_temp_c() -> float | None:
    try:
        return int(Path("/sys/class/thermal/thermal_zone0/temp").read_text()) / 1000.0
    except (OSError, ValueError):
        return None
