#!/usr/bin/env python3
"""The collection station as witness: cosignatures per second through its HTTPS endpoint, with
its real index, next to bare Ed25519 verify+sign on the same machine, in one run.

    .venv/bin/python scripts/bench_station_witness.py [--devices 1000] [--rounds 3]
        [--clients 4] [--database postgresql://…]

``--devices`` simulated device logs, enrolled in the station's index, each append 1–3 entries
and checkpoint once a minute (one ``POST /witness/add-checkpoint`` per device per round, with
its consistency proof from the size the station holds; the requests are built beforehand by
scripts/bench_witness.py's builder, so only the station is measured). The station is the real
``bodycam station run`` child process on 127.0.0.1 with mutual TLS (a throw-away CA made with
``cryptography``), SQLite index (WAL, synchronous=FULL: one durable commit per cosignature) or
the PostgreSQL given; ``--clients`` keep-alive HTTPS connections send in parallel, each owning a
slice of the devices so every device's checkpoints stay in order.

Prints the rate, its ratio to ``bare`` (the floor any witness pays per checkpoint: one Ed25519
verify and one sign), and the headroom over the fleet's need (devices / 60 per second).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import os
import selectors
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_witness import bare_rate, build_requests  # noqa: E402

from agent.offload.loopback import make_pki  # noqa: E402
from agent.station.enrolment import RECORD_TYPE, parse_enrolment  # noqa: E402
from agent.station.index import open_index  # noqa: E402

CLIENT = "BENCH-CLIENT"


def start_station(config: Path, data: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``bodycam station run``; the process and its URL once it listens."""
    err = open(data.parent / "station.log", "ab")  # noqa: SIM115 -- the child keeps it
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "station", "run", "--config",
                             str(config), "--data-dir", str(data), "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=err, cwd=REPO)
    err.close()
    assert proc.stdout is not None
    buf = b""
    deadline = time.monotonic() + 60
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"listening on " not in buf or not buf.endswith(b"\n"):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"the station did not start; see {data.parent / 'station.log'}")
            if sel.select(1.0):
                buf += os.read(proc.stdout.fileno(), 4096)
    return proc, buf.split(b"listening on ", 1)[1].split(b"\n", 1)[0].decode().strip()


def drive(url: str, pki: Path, rounds: list[list[bytes]], clients: int) -> float:
    """Cosignatures per second over ``clients`` keep-alive mTLS connections; all must be 200."""
    parts = urlsplit(url)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / f"{CLIENT}.crt"), str(pki / f"{CLIENT}.key"))
    devices = len(rounds[0])
    failures: list[str] = []
    go = threading.Barrier(clients + 1)

    def work(k: int) -> None:
        conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=ctx, timeout=30)
        conn.connect()
        go.wait()
        try:
            for batch in rounds:
                for i in range(k, devices, clients):
                    conn.request("POST", "/witness/add-checkpoint", body=batch[i])
                    resp = conn.getresponse()
                    reply = resp.read()
                    if resp.status != 200:
                        failures.append(f"{resp.status} {reply[:200]!r}")
                        return
        finally:
            conn.close()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    go.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if failures:
        raise SystemExit(f"the station refused a genuine checkpoint: {failures[0]}")
    return sum(len(b) for b in rounds) / elapsed


def main() -> int:
    """Build the fleet, enrol it, start the station, measure, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--database", default="", help="postgresql://… (default: SQLite)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    registry, rounds = build_requests(args.devices, args.rounds, args.seed)
    n = args.devices * args.rounds
    print(f"{args.devices} device logs × {args.rounds} checkpoints ({n} requests, built in "
          f"{time.perf_counter() - t0:.1f} s); the fleet needs {args.devices / 60:.1f} "
          "cosignatures/s")
    with tempfile.TemporaryDirectory(prefix="bench-station-witness-") as tmp:
        root = Path(tmp)
        pki = make_pki(root / "pki", CLIENT)
        data = root / "data"
        config = root / "station.toml"
        config.write_text("\n".join([
            "[station]", 'listen = "127.0.0.1"', "port = 0", f'database = "{args.database}"',
            "[tls]", f'cafile = "{pki / "ca.crt"}"', f'certfile = "{pki / "server.crt"}"',
            f'keyfile = "{pki / "server.key"}"']) + "\n")
        index = open_index(args.database, data)
        try:
            for i in range(args.devices):
                device = f"BENCH-{i:05d}"
                keys = registry.trusted_keys(f"bodycam/v1/{device}")
                assert keys

                index.enrol(parse_enrolment({"type": RECORD_TYPE, "device_id": device,
                                             "public_key_ed25519_b64": base64.b64encode(
                                                 next(iter(keys)).public).decode()}),
                            "2026-11-30T00:00:00Z")
        finally:
            index.close()
        proc, url = start_station(config, data)
        try:
            bare_before = max(bare_rate(n) for _ in range(3))  # best of three: shared cores
            station = drive(url, pki, rounds, args.clients)
            bare_after = max(bare_rate(n) for _ in range(3))
        finally:
            proc.terminate()
            proc.wait(30)
            if proc.stdout is not None:
                proc.stdout.close()
    bare = max(bare_before, bare_after)
    need = args.devices / 60
    index_name = "postgresql" if args.database else "sqlite"
    print(f"{'configuration':40} {'cosig/s':>9} {'÷ bare':>7} {'× fleet need':>13}")
    for name, rate in (("bare Ed25519 verify+sign", bare),
                       (f"station https/{index_name}, {args.clients} clients", station)):
        print(f"{name:40} {rate:9.0f} {rate / bare:7.3f} {rate / need:13.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
