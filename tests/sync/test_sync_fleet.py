"""``bodycam fleet watch`` against the TLS broker, and its table rendering."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from mqtt_harness import Broker, device_key, sample_birth, sample_checkpoint

from agent.station.fleetwatch import FleetView, render_table
from agent.sync.link import MqttLink, TlsSettings
from agent.sync.outbox import Outbox

pytestmark = pytest.mark.timeout(60)


class JsonStream:
    """Reads a watcher's ``--json`` output on a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self.cond:
                self.events.append(json.loads(line))
                self.cond.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.events):
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; events: {self.events[-6:]}"
                self.cond.wait(left)


def _link(broker: Broker, ca: Path, tmp: Path, device: str, key: Any) -> MqttLink:
    return MqttLink(device_id=device, outbox=Outbox(tmp / f"{device}.db"),
                    url=f"mqtts://localhost:{broker.port}",
                    tls=TlsSettings(ca / "ca.crt", ca / f"{device}.crt", ca / f"{device}.key"),
                    on_command=print, birth=sample_birth(key), reconnect=(0.1, 0.5))


def test_watch_json_streams_devices_and_verifies_checkpoints(
    tls_broker: Broker, test_ca: Path, tmp_path: Path
) -> None:
    """A genuine checkpoint verifies, a forged one does not; status changes are streamed."""
    watcher = subprocess.Popen(
        [sys.executable, "-c", "import sys; from agent.station.fleetwatch import fleet_main; "
         "sys.exit(fleet_main(sys.argv[1:]))", "watch", "--broker",
         f"mqtts://localhost:{tls_broker.port}", "--cafile", str(test_ca / "ca.crt"),
         "--cert", str(test_ca / "backoffice.crt"), "--key", str(test_ca / "backoffice.key"),
         "--json", "--for", "40"], stdout=subprocess.PIPE, text=True)
    stream = JsonStream(watcher)
    key_a, key_b, forger = device_key(), device_key(), device_key()
    a = _link(tls_broker, test_ca, tmp_path, "cam-a", key_a)
    b = _link(tls_broker, test_ca, tmp_path, "cam-b", key_b)
    try:
        a.start()
        b.start()
        # Births are retained, so seeing both proves the watcher is subscribed.
        stream.wait_for(lambda ev: {e["device_id"] for e in ev if e["event"] == "birth"}
                        == {"cam-a", "cam-b"})
        a.publish_telemetry({"recording": True, "battery_pct": 71, "outbox_depth": 0})
        a.enqueue_checkpoint(sample_checkpoint(key_a, "cam-a", 7), None)
        b.enqueue_checkpoint(sample_checkpoint(forger, "cam-b", 3), None)
        stream.wait_for(lambda ev: sum(e["event"] == "checkpoint" for e in ev) == 2
                        and any(e["event"] == "telemetry" for e in ev))
        a.stop()
        stream.wait_for(lambda ev: any(e["event"] == "status" and e["state"] == "offline"
                                       and e["device_id"] == "cam-a" for e in ev))
    finally:
        a.stop()
        b.stop()
        watcher.terminate()
        watcher.wait(10)
    checkpoints = {e["device_id"]: e for e in stream.events if e["event"] == "checkpoint"}
    assert checkpoints["cam-a"]["verified"] is True and checkpoints["cam-a"]["size"] == 7
    assert checkpoints["cam-b"]["verified"] is False
    assert "does not verify" in checkpoints["cam-b"]["error"]
    telemetry = next(e for e in stream.events if e["event"] == "telemetry")
    assert (telemetry["device_id"], telemetry["battery_pct"]) == ("cam-a", 71)
    offline = [e for e in stream.events if e["event"] == "status" and e["state"] == "offline"
               and e["device_id"] == "cam-a"]
    assert offline and offline[-1]["cause"] == "shutdown"
    assert all("at" in e for e in stream.events)


def _msg(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()


def test_table_shows_each_column_and_ignores_stale_wills() -> None:
    """Rows carry status age, recording, battery, storage, GPS, outbox and checkpoint marks."""
    key = device_key()
    view = FleetView()
    base = "bodycam/v1/cam-a"
    now = 1_000_000.0
    view.apply(f"{base}/birth", _msg({**sample_birth(key), "device_id": "cam-a"}), now=now)
    view.apply(f"{base}/status", _msg({"state": "online", "session": 4, "at": None}), now=now)
    view.apply(f"{base}/status", _msg({"state": "offline", "session": 3, "at": None}),
               now=now + 1)  # an older session's Will, delivered late
    view.apply(f"{base}/telemetry", _msg({"recording": True, "battery_pct": 64,
                                          "battery_runtime_s": 9000,
                                          "storage_recording_s": 30000, "gps_age_s": 3,
                                          "outbox_depth": 12, "offload_backlog": 2,
                                          "offload_oldest_s": 300,
                                          "offload_state": "unreachable"}), now=now)
    event = view.apply(f"{base}/checkpoint",
                       _msg({"seq": 9, "note": sample_checkpoint(key, "cam-a", 42)}), now=now)
    assert event is not None and event["verified"] is True
    view.apply("bodycam/v1/cam-b/status", _msg({"state": "offline", "session": 2, "at": None,
                                                "cause": "connection_lost"}), now=now - 600)
    view.apply("bodycam/v1/cam-b/checkpoint", _msg({"seq": 1, "note": "garbage"}), now=now)
    assert view.apply("elsewhere/x", b"{}", now=now) is None
    assert view.apply(f"{base}/telemetry", b"\xff", now=now) == {
        "event": "malformed", "device_id": "cam-a", "topic": "telemetry"}

    table = render_table(view, now=now + 90)
    header, row_a, row_b = table.splitlines()
    assert header.split() == ["DEVICE", "STATUS", "FOR", "REC", "BATT", "LEFT", "STORE", "GPS",
                              "OUTBOX", "OFFLOAD", "CKPT"]
    assert row_a.split() == ["cam-a", "online", "90s", "●", "REC", "64%", "2h30m", "8h20m",
                             "93s", "12", "!2/5m", "✓", "#42"]
    assert row_b.split()[:3] == ["cam-b", "offline", "11m"]
    assert row_b.split()[-1] == "✗"
