#!/usr/bin/env python3
"""Fleet-console load benchmark: 1,000 units reporting every minute, one browser watching.

A real mosquitto on loopback, a real ``bodycam station run`` with the console (its MQTT feed,
SSE, HTTPS listener), Debian's chromium signed in to the console through Playwright, and a
bounded load generator that publishes, for ``--units`` simulated units, a retained status and
state and then one telemetry report per unit every ``--period`` seconds, spread evenly (1,000
units / 60 s = 16.7 reports/s), each moving its unit a little.

Measured:

* **page latency** — every ``--probe-s`` seconds one unit's state is republished with a new
  officer id; a MutationObserver in the page records when that text appears in the unit's row
  (wall clock on both sides, same machine): publish → visible on the page;
* **station CPU** — user + system CPU of the station process over the steady window, as a
  share of one core, and its resident memory; mosquitto's CPU beside it for scale.

The broker is plain MQTT on loopback with the generator on a few connections (the cost
measured is the station's, not 1,000 TLS handshakes); the console is HTTPS as in service.

Usage: ``python scripts/bench_console.py [--units 1000] [--period 60] [--seconds 180]``
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import paho.mqtt.client as mqtt  # (after the sys.path line, as bench_station.py)
from paho.mqtt.enums import CallbackAPIVersion

from tests.console.harness import CHROMIUM, ConsoleStation, make_ca, utc
from tests.sync.mqtt_harness import Broker, free_port, plain_broker_conf

PROBE = "LOAD-PROBE"


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Load:
    """The bounded load generator: ``units`` units, one report each per ``period`` s."""

    def __init__(self, port: int, units: int, period: float) -> None:
        self.units, self.period = units, period
        self.ids = [f"LOAD-{i:04d}" for i in range(units)]
        rng = random.Random(7)
        self.pos = {d: [31.20 + rng.random() * 0.06, 121.44 + rng.random() * 0.08]
                    for d in self.ids}
        self.battery = dict.fromkeys(self.ids, 100.0)
        self.sent = 0
        self.stop = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="load",
                                  protocol=mqtt.MQTTv5)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def pub(self, device: str, kind: str, doc: dict[str, Any], *, retain: bool = False,
            qos: int = 0) -> Any:
        body = json.dumps({"device_id": device, "at": utc(), **doc})
        self.sent += 1
        return self.client.publish(f"bodycam/v1/{device}/{kind}", body, qos=qos, retain=retain)

    def announce(self) -> None:
        for i, d in enumerate([*self.ids, PROBE]):
            self.pub(d, "status", {"state": "online", "session": 1}, retain=True, qos=1)
            self.pub(d, "state", {"state": "recording" if i % 7 == 0 else "standby",
                                  "officer_id": f"P-{i:04d}", "unit": f"Sector {i % 12}"},
                     retain=True, qos=1).wait_for_publish(10)

    def report(self, device: str) -> None:
        p = self.pos[device]
        p[0] += random.uniform(-1, 1) * 2e-4
        p[1] += random.uniform(-1, 1) * 2e-4
        self.battery[device] = max(5.0, self.battery[device] - 0.15)
        self.pub(device, "telemetry", {
            "outbox_depth": 0, "recording": int(device[5:]) % 7 == 0,
            "battery_pct": int(self.battery[device]), "battery_runtime_s": 6 * 3600,
            "storage_free_bytes": 30_000_000_000, "storage_recording_s": 20 * 3600,
            "gps_fix": True, "gps_age_s": 1, "gps_lat_e7": round(p[0] * 1e7),
            "gps_lon_e7": round(p[1] * 1e7), "offload_backlog": 0})

    def run(self) -> None:
        gap = self.period / self.units
        start = time.monotonic()
        n = 0
        while not self.stop.is_set():
            due = start + n * gap
            delay = due - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                break
            self.report(self.ids[n % self.units])
            n += 1

    def close(self) -> None:
        self.stop.set()
        self.client.disconnect()
        self.client.loop_stop()


_OBSERVER = """(probe) => {
  window.__seen = {};
  const mark = () => {
    const row = document.querySelector(`#fleet tr[data-device="${probe}"]`);
    if (row) { const m = row.textContent.match(/MARK-(\\d+)/); if (m && !window.__seen[m[1]])
      window.__seen[m[1]] = Date.now(); }
  };
  new MutationObserver(mark).observe(document.querySelector('#fleet tbody'),
                                     {childList: true, subtree: true, characterData: true});
}"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=1000)
    ap.add_argument("--period", type=float, default=60.0, help="seconds between one unit's reports")
    ap.add_argument("--seconds", type=float, default=180.0, help="steady-state window")
    ap.add_argument("--probe-s", type=float, default=3.0)
    ap.add_argument("--dir", type=Path, help="keep the bench files here (default: temporary)")
    args = ap.parse_args()
    if CHROMIUM is None or shutil.which("mosquitto") is None:
        print("bench_console: needs chromium and mosquitto (scripts/setup.sh)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    root = args.dir or Path(tempfile.mkdtemp(prefix="bench-console-"))
    root.mkdir(parents=True, exist_ok=True)
    pki = make_ca(root / "pki")
    (root / "broker").mkdir(exist_ok=True)
    port = free_port()
    broker = Broker(plain_broker_conf(root / "broker", port), "127.0.0.1", port, root / "broker")
    broker.start()
    station = ConsoleStation(root, pki, port)
    station.write_config()
    conf = root / "station.toml"
    conf.write_text(conf.read_text().replace(f'broker = "mqtts://localhost:{port}"',
                                             f'broker = "mqtt://127.0.0.1:{port}"\n'
                                             "allow_plaintext = true"))
    station.add_user("bench", "viewer", "bench-password-1")
    load = Load(port, args.units, args.period)
    try:
        station.start()
        assert station.proc is not None and broker.proc is not None
        load.announce()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_context(ignore_https_errors=True,
                                       viewport={"width": 1600, "height": 1000}).new_page()
            page.goto(station.console_url)
            page.fill("#login-user", "bench")
            page.fill("#login-password", "bench-password-1")
            page.click("#login-submit")
            page.wait_for_selector(f'#fleet tr[data-device="{PROBE}"]', timeout=60_000)
            page.evaluate(_OBSERVER, PROBE)
            gen = threading.Thread(target=load.run, daemon=True)
            gen.start()
            time.sleep(min(10.0, args.period / 4))  # let the first reports land
            cpu0, bcpu0, t0, sent0 = (_cpu(station.proc.pid), _cpu(broker.proc.pid),
                                      time.monotonic(), load.sent)
            published: dict[int, float] = {}
            k = 0
            while time.monotonic() - t0 < args.seconds:
                k += 1
                published[k] = time.time() * 1000
                load.pub(PROBE, "state", {"state": "standby", "officer_id": f"MARK-{k}",
                                          "unit": "probe"}, retain=True, qos=1)
                time.sleep(args.probe_s)
            wall = time.monotonic() - t0
            cpu, bcpu = _cpu(station.proc.pid) - cpu0, _cpu(broker.proc.pid) - bcpu0
            rate = (load.sent - sent0) / wall
            time.sleep(2.5)
            seen = page.evaluate("() => window.__seen")
            shot = root / f"console-{args.units}.png"
            page.screenshot(path=str(shot))
            rss = _rss_mb(station.proc.pid)
            browser.close()
    finally:
        load.close()
        station.stop()
        broker.kill()
    lat = sorted(seen[str(i)] - published[i] for i in published if str(i) in seen)
    missing = len(published) - len(lat)
    print(f"units {args.units}, one report per unit every {args.period:g} s; "
          f"{rate:.1f} messages/s for {wall:.0f} s")
    if lat:
        print(f"page latency publish → visible: n={len(lat)} p50 {statistics.median(lat):.0f} ms, "
              f"p95 {lat[int(0.95 * (len(lat) - 1))]:.0f} ms, max {lat[-1]:.0f} ms"
              f"{f', {missing} never seen' if missing else ''}")
    print(f"station CPU {100 * cpu / wall:.1f} % of one core "
          f"({100 * cpu / wall * 1000 / args.units:.1f} % per 1,000 units), RSS {rss:.0f} MiB; "
          f"mosquitto CPU {100 * bcpu / wall:.1f} %")
    print(f"screenshot: {shot}")
    ok = bool(lat) and not missing and lat[-1] < 2000
    print("PASS: every update on the page within 2 s" if ok else "FAIL: an update took > 2 s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
