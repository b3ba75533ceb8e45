#!/usr/bin/env python3
"""Benchmark the MQTT sync path against bare paho, side by side, on a local mosquitto.

1. Drain: a backlog of N outbox messages (default 10,000, ~600-byte manifests) drained
   through Outbox + MqttLink into mosquitto, versus a bare paho QoS 1 publish loop of the same
   messages with the same in-flight window. Prints both times and the ratio.
2. Enqueue: cost of one durable ``Outbox.enqueue`` (one fsync'd SQLite commit).
3. Telemetry: process CPU per telemetry message (publish_telemetry → JSON → paho → socket),
   paced so none are coalesced, versus bare paho publishing the same JSON at QoS 0.

Both sides run in this process against the same broker, one after the other, so the ratio is
meaningful on a loaded machine even when absolute numbers are not.

    .venv/bin/python scripts/bench_mqtt.py [--messages 10000] [--telemetry 1000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.sync.link import MqttLink
from agent.sync.outbox import Outbox

DEVICE = "bench-1"
WINDOW = 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_broker(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
                    "persistence false\nlog_dest none\nmax_inflight_messages 0\n")
    proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _payload(i: int) -> dict[str, object]:
    return {"manifest": {"format": "bodycam-segment/1", "device_id": DEVICE, "device_seq": i,
                         "sha256_plain": "ab" * 32, "sha256_cipher": "cd" * 32,
                         "start": "2026-11-27T04:00:00.000Z", "frames": 300,
                         "gps": {"fixes": 10, "lat": 31230416, "lon": 121473701}},
            "signature": {"alg": "ed25519", "key": "A" * 44, "sig": "B" * 88}}


def _birth() -> dict[str, str]:
    return {"software": "bench", "public_key": "A" * 43 + "="}


def bench_bare_paho(port: int, bodies: list[bytes]) -> float:
    done = threading.Event()
    acked = [0]

    def on_publish(*_: object) -> None:
        acked[0] += 1
        if acked[0] == len(bodies):
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(WINDOW)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    for body in bodies:
        client.publish(f"bodycam/v1/{DEVICE}/segment", body, qos=1)
    done.wait(600)
    elapsed = time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    return elapsed


def _prefill(db: Path, bodies: list[bytes]) -> None:
    """Bulk-load a backlog (one transaction; a real backlog accumulates over hours)."""
    Outbox(db).close()
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO outbox (topic, payload, qos, retain, kind, created) VALUES (?,?,1,0,?,0)",
            [(f"bodycam/v1/{DEVICE}/segment", b, "segment") for b in bodies])


def bench_outbox_link(port: int, work: Path, bodies: list[bytes]) -> float:
    db = work / "drain.db"
    _prefill(db, bodies)
    outbox = Outbox(db)
    link = MqttLink(device_id=DEVICE, outbox=outbox, url=f"mqtt://127.0.0.1:{port}", tls=None,
                    allow_plaintext=True, on_command=lambda c: None, birth=_birth(),
                    max_inflight=WINDOW, reconnect=(0.05, 0.2))
    t0 = time.perf_counter()
    link.start()
    while outbox.depth():
        time.sleep(0.005)
    elapsed = time.perf_counter() - t0
    link.stop()
    return elapsed


def bench_enqueue(work: Path, n: int) -> float:
    outbox = Outbox(work / "enqueue.db")
    body = json.dumps(_payload(0)).encode()
    t0 = time.perf_counter()
    for _ in range(n):
        outbox.enqueue(f"bodycam/v1/{DEVICE}/segment", body, kind="segment")
    return (time.perf_counter() - t0) / n


def _count_telemetry(port: int, n: int) -> subprocess.Popen[bytes]:
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t",
                            f"bodycam/v1/{DEVICE}/telemetry", "-C", str(n)],
                           stdout=subprocess.PIPE)
    time.sleep(0.3)
    return sub


def _received(sub: subprocess.Popen[bytes]) -> int:
    """Messages the subscriber saw (coalesced telemetry is, by design, never sent)."""
    try:
        out, _ = sub.communicate(timeout=3)
    except subprocess.TimeoutExpired:
        sub.terminate()
        out, _ = sub.communicate()
    return out.count(b"\n")


def _telemetry_doc(i: int) -> dict[str, object]:
    return {"recording": True, "battery_pct": 50 + i % 50, "battery_runtime_s": 9000 - i,
            "storage_recording_s": 40000, "gps_fix": True, "gps_age_s": 1,
            "clock_source": "gps", "cpu_temp_dc": 612}


def bench_telemetry_link(port: int, work: Path, n: int, interval: float) -> float:
    link = MqttLink(device_id=DEVICE, outbox=Outbox(work / "telemetry.db"),
                    url=f"mqtt://127.0.0.1:{port}", tls=None, allow_plaintext=True,
                    on_command=lambda c: None, birth=_birth())
    link.start()
    while not link.stats().connected:
        time.sleep(0.01)
    sub = _count_telemetry(port, n)
    cpu0 = time.process_time()
    for i in range(n):
        link.publish_telemetry(_telemetry_doc(i))
        time.sleep(interval)
    got = _received(sub)
    cpu = time.process_time() - cpu0
    link.stop()
    if got < n:
        print(f"  note: {n - got} of {n} telemetry reports were coalesced (newer one pending)")
    return cpu / max(got, 1)


def bench_telemetry_bare(port: int, n: int, interval: float) -> float:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare-t",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    sub = _count_telemetry(port, n)
    cpu0 = time.process_time()
    for i in range(n):
        doc = {**_telemetry_doc(i), "device_id": DEVICE, "at": "2026-11-27T04:00:00.000Z"}
        client.publish(f"bodycam/v1/{DEVICE}/telemetry",
                       json.dumps(doc, separators=(",", ":"), sort_keys=True), qos=0)
        time.sleep(interval)
    got = _received(sub)
    cpu = time.process_time() - cpu0
    client.disconnect()
    client.loop_stop()
    return cpu / max(got, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--telemetry", type=int, default=1000)
    parser.add_argument("--enqueue", type=int, default=300)
    args = parser.parse_args()
    if shutil.which("mosquitto") is None:
        print("mosquitto is not installed", file=sys.stderr)
        return 1
    bodies = [json.dumps({**_payload(i), "device_id": DEVICE, "seq": i + 1,
                          "outbox_epoch": "0" * 16, "queued_at": "2026-11-27T04:00:00.000Z"},
                         separators=(",", ":"), sort_keys=True).encode()
              for i in range(args.messages)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker, port = _start_broker(work)
        try:
            bare = bench_bare_paho(port, bodies)
            ours = bench_outbox_link(port, work, bodies)
            per_enqueue = bench_enqueue(work, args.enqueue)
            interval = 0.005
            t_bare = bench_telemetry_bare(port, args.telemetry, interval)
            t_ours = bench_telemetry_link(port, work, args.telemetry, interval)
        finally:
            broker.terminate()
            broker.wait(10)
    size = sum(map(len, bodies)) / len(bodies)
    print(f"backlog drain, {args.messages} messages of ~{size:.0f} B, window {WINDOW}:")
    print(f"  bare paho QoS 1 loop     {bare:8.2f} s  {args.messages / bare:8.0f} msg/s")
    print(f"  Outbox + MqttLink        {ours:8.2f} s  {args.messages / ours:8.0f} msg/s")
    print(f"  ratio (ours / bare)      {ours / bare:8.2f}")
    print(f"durable enqueue (fsync'd commit): {per_enqueue * 1e3:.2f} ms/message")
    print(f"telemetry CPU per message ({args.telemetry} msgs, paced {interval * 1e3:.0f} ms):")
    print(f"  bare paho QoS 0          {t_bare * 1e6:8.0f} us")
    print(f"  MqttLink                 {t_ours * 1e6:8.0f} us")
    print(f"  ratio (ours / bare)      {t_ours / t_bare:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
