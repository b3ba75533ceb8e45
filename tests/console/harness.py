"""Bench parts for the console tests and scripts/bench_console.py: a real TLS mosquitto with
the shipped ACL, a real ``bodycam station run`` with the console, simulated units that
publish as devices do (each with its own device certificate), and a Playwright browser on
Debian's chromium (no browser download)."""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.sync.command_messages import iso_utc
from tests.sync.mqtt_harness import Broker, free_port, make_ca, tls_broker_conf

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

__all__ = ["CHROMIUM", "ConsoleStation", "SimUnit", "make_broker", "make_ca", "utc"]


def utc() -> str:
    """Now, as the units write ``at`` (the agent's own formatter)."""
    return iso_utc(datetime.now(UTC))


def make_broker(work: Path, pki: Path) -> Broker:
    """The shipped reference broker config (TLS, client certificates, ACL) on loopback."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = tls_broker_conf(work, port, pki)
    acl = work / "bodycam.acl"
    if "bodycam/v1/+/alarm" not in acl.read_text():
        # The station monitor's grant (its alarms are published by a back-office identity),
        # for a checkout whose shipped ACL predates it.
        acl.write_text(acl.read_text().replace("topic write bodycam/v1/+/cmd/+\n",
                       "topic write bodycam/v1/+/cmd/+\ntopic write bodycam/v1/+/alarm\n", 1))
    broker = Broker(conf, "127.0.0.1", port, work)
    broker.start()
    return broker


@dataclass
class ConsoleStation:
    """``bodycam station run`` with ``[console] enabled`` in a child process."""

    root: Path
    pki: Path
    broker_port: int
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    console_url: str = ""

    @property
    def data_dir(self) -> Path:
        return self.root / "station"

    def write_config(self, *, monitor: bool = False, **console: Any) -> Path:
        """Console on its own broker settings, or (``monitor``) the station's checkpoint
        monitor on [mqtt] with the console reusing that broker and identity."""
        p = self.pki
        extra = "".join(f"{k} = {json.dumps(v)}\n" for k, v in console.items())
        broker = f"""broker = "mqtts://localhost:{self.broker_port}"
cafile = "{p / 'ca.crt'}"
certfile = "{p / 'backoffice.crt'}"
keyfile = "{p / 'backoffice.key'}"
"""
        if monitor:
            extra += f"""[mqtt]
enabled = true
url = "mqtts://localhost:{self.broker_port}"
cafile = "{p / 'ca.crt'}"
certfile = "{p / 'backoffice.crt'}"
keyfile = "{p / 'backoffice.key'}"
"""
            broker = ""
        conf = self.root / "station.toml"
        conf.write_text(f"""[station]
listen = "127.0.0.1"
port = 0
[tls]
cafile = "{p / 'ca.crt'}"
certfile = "{p / 'server.crt'}"
keyfile = "{p / 'server.key'}"
[console]
enabled = true
port = {free_port()}
{broker}{extra}""")
        return conf

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agent.cli", "station", *args, "--config",
                               str(self.root / "station.toml"), "--data-dir",
                               str(self.data_dir)], check=False, input=stdin, capture_output=True,
                              text=True, cwd=REPO, timeout=60)

    def add_user(self, name: str, role: str, password: str) -> None:
        r = self.cli("user", "add", name, role, "--password-stdin", stdin=password + "\n")
        assert r.returncode == 0, r.stderr

    def start(self, timeout: float = 30.0) -> ConsoleStation:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        err = open(self.root / "station.stderr", "ab")  # noqa: SIM115 -- the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "station", "run", "--config",
             str(self.root / "station.toml"), "--data-dir", str(self.data_dir)],
            stdout=subprocess.PIPE, stderr=err, cwd=REPO)
        err.close()
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buf = b""
        while b"listening on " not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"station did not start: {self.stderr()[-3000:]}")
            if sel.select(left):
                buf += os.read(self.proc.stdout.fileno(), 4096)
        sel.close()
        self.url = buf.split(b"listening on ", 1)[1].split(b"\n", 1)[0].decode().strip()
        self.console_url = buf.split(b"console on ", 1)[1].split(b"\n", 1)[0].decode().strip()
        return self

    def stderr(self) -> str:
        path = self.root / "station.stderr"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()

    def cpu_seconds(self) -> float:
        """User + system CPU time the station process has used so far."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _client(client_id: str, pki: Path, cert: str) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(pki / "ca.crt"), certfile=str(pki / f"{cert}.crt"),
              keyfile=str(pki / f"{cert}.key"), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    return c


@dataclass
class SimUnit:
    """A unit that publishes its status, state and telemetry as the agent does, with its own
    device certificate (so the broker's ACL applies exactly as to a real unit). With
    ``answer``, it also answers start/stop commands like a device."""

    device_id: str
    pki: Path
    port: int
    lat: float
    lon: float
    officer: str = "P-0000"
    battery: int = 90
    free: int = 40_000_000_000
    recording: bool = False
    client: mqtt.Client | None = None
    on_command: Callable[[str, dict[str, Any]], None] | None = None
    step: int = field(default=0)

    def connect(self, cert: str | None = None) -> SimUnit:
        c = _client(self.device_id, self.pki, cert or self.device_id)
        c.will_set(f"bodycam/v1/{self.device_id}/status",
                   json.dumps({"state": "offline", "session": 1, "device_id": self.device_id,
                               "at": utc()}), qos=1, retain=True)
        c.connect("localhost", self.port, keepalive=30)
        c.loop_start()
        self.client = c
        self.pub("status", {"state": "online", "session": 1}, retain=True)
        self.publish_state()
        return self

    def pub(self, kind: str, doc: dict[str, Any], retain: bool = False) -> None:
        assert self.client is not None
        body = {"device_id": self.device_id, "at": utc(), **doc}
        self.client.publish(f"bodycam/v1/{self.device_id}/{kind}", json.dumps(body), qos=1,
                            retain=retain).wait_for_publish(10)

    def publish_state(self) -> None:
        self.pub("state", {"state": "recording" if self.recording else "standby",
                           "officer_id": self.officer, "unit": "Patrol 7"}, retain=True)

    def telemetry(self, qos: int = 1) -> None:
        """One report, moving the unit a little north-east and draining it a little."""
        self.step += 1
        self.battery = max(0, self.battery - (1 if self.step % 30 == 0 else 0))
        self.free -= 50_000_000 if self.recording else 0
        doc = {"outbox_depth": 0, "recording": self.recording, "battery_pct": self.battery,
               "storage_free_bytes": self.free, "gps_fix": True, "gps_age_s": 1,
               "gps_lat_e7": round((self.lat + self.step * 0.0002) * 1e7),
               "gps_lon_e7": round((self.lon + self.step * 0.0003) * 1e7),
               "offload_backlog": 2, "offload_backlog_bytes": 150_000_000}
        assert self.client is not None
        info = self.client.publish(f"bodycam/v1/{self.device_id}/telemetry",
                                   json.dumps({"device_id": self.device_id, "at": utc(), **doc}),
                                   qos=qos)
        if qos:
            info.wait_for_publish(10)

    def close(self) -> None:
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()


def backoffice_publish(pki: Path, port: int, topic: str, doc: dict[str, Any], *,
                       cert: str = "backoffice", retain: bool = False) -> None:
    """Publish one message with a back-office identity (the monitor's, for alarms)."""
    c = _client(f"bo-{time.monotonic_ns()}", pki, cert)
    c.connect("localhost", port, keepalive=30)
    c.loop_start()
    try:
        c.publish(topic, json.dumps(doc), qos=1, retain=retain).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()
