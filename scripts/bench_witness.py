#!/usr/bin/env python3
"""Witness throughput: cosignatures per second for a fleet of device logs, next to bare Ed25519.

    .venv/bin/python scripts/bench_witness.py [--devices 1000] [--rounds 3] [--no-http]

Simulates ``--devices`` device logs that each append 1–3 entries and checkpoint once a
minute (one add-checkpoint per device per round, with its consistency proof from the size
the witness holds). The requests are built beforehand, so only the witness is measured:

* ``bare``: Ed25519 verify (the device's signature) + sign (the cosignature), the floor
  any witness pays per checkpoint;
* ``direct/memory``, ``direct/sqlite``: ``Witness.handle_add_checkpoint`` called in-process
  over the in-memory and the SQLite state (WAL, synchronous=FULL, one commit per cosignature);
* ``http/sqlite``: the same handler mounted in aiohttp on 127.0.0.1, driven by one
  keep-alive client (``http.client``).

Each line reports the rate, its ratio to ``bare``, and the headroom over the fleet's need
(devices / 60 cosignatures per second). The run is bounded by ``--devices × --rounds``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.evidence.checkpoint import Checkpoint, sign_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.merkle import CompactRange, consistency_proof, leaf_hash
from agent.witness import (
    Cosigner,
    MemoryWitnessState,
    SqliteWitnessState,
    StaticKeyRegistry,
    Witness,
    WitnessState,
)
from agent.witness.protocol import MAX_REQUEST_BYTES, encode_request

Runner = Callable[[Witness, list[list[bytes]]], float]


def build_requests(devices: int, rounds: int, seed: int) -> tuple[StaticKeyRegistry, list[list[bytes]]]:
    """Per round, one add-checkpoint body per device (sizes grow 1–3 entries a round)."""
    rng = random.Random(seed)
    keys = [DeviceKey(Ed25519PrivateKey.generate()) for _ in range(devices)]
    origins = [f"bodycam/v1/BENCH-{i:05d}" for i in range(devices)]
    leaves: list[list[bytes]] = [[] for _ in range(devices)]
    frontiers = [CompactRange() for _ in range(devices)]
    rounds_out: list[list[bytes]] = []
    for r in range(rounds):
        batch = []
        for i in range(devices):
            old = len(leaves[i])
            for _ in range(rng.randint(1, 3)):
                h = leaf_hash(b"device %d round %d entry %d" % (i, r, len(leaves[i])))
                leaves[i].append(h)
                frontiers[i].append(h)
            cp = sign_checkpoint(Checkpoint(origins[i], frontiers[i].size, frontiers[i].root()), keys[i])
            batch.append(encode_request(old, consistency_proof(leaves[i], old), cp))
        rounds_out.append(batch)
    registry = StaticKeyRegistry.of_devices({o: [k.public_bytes] for o, k in zip(origins, keys, strict=True)})
    return registry, rounds_out


def bare_rate(n: int) -> float:
    """Ed25519 verify + sign per second on checkpoint-sized messages."""
    device = Ed25519PrivateKey.generate()
    witness = Ed25519PrivateKey.generate()
    pub = device.public_key()
    msgs = [b"bodycam/v1/BENCH-%05d\n%d\n%s\n" % (i, i, b"A" * 44) for i in range(n)]
    sigs = [device.sign(m) for m in msgs]
    t0 = time.perf_counter()
    for m, s in zip(msgs, sigs, strict=True):
        pub.verify(s, m)
        witness.sign(b"cosignature/v1\ntime 1\n" + m)
    return n / (time.perf_counter() - t0)


def run_direct(witness: Witness, rounds: list[list[bytes]]) -> float:
    """Cosignatures per second calling the handler in-process; every answer must be 200."""
    n = 0
    t0 = time.perf_counter()
    for batch in rounds:
        for body in batch:
            status, _, reply = witness.handle_add_checkpoint(body)
            if status != 200:
                raise SystemExit(f"witness refused a genuine checkpoint: {status} {reply!r}")
            n += 1
    return n / (time.perf_counter() - t0)


def run_http(witness: Witness, rounds: list[list[bytes]]) -> float:
    """Cosignatures per second through aiohttp on loopback, one keep-alive client."""
    loop = asyncio.new_event_loop()
    box: dict[str, object] = {}

    async def handler(request: web.Request) -> web.Response:
        status, ctype, out = witness.handle_add_checkpoint(await request.read())
        return web.Response(status=status, body=out, headers={"Content-Type": ctype})

    async def start() -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post("/add-checkpoint", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        box["runner"], box["port"] = runner, runner.addresses[0][1]

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    conn = http.client.HTTPConnection("127.0.0.1", int(str(box["port"])), timeout=10)
    n = 0
    try:
        t0 = time.perf_counter()
        for batch in rounds:
            for body in batch:
                conn.request("POST", "/add-checkpoint", body=body)
                resp = conn.getresponse()
                reply = resp.read()
                if resp.status != 200:
                    raise SystemExit(f"witness refused a genuine checkpoint: {resp.status} {reply!r}")
                n += 1
        rate = n / (time.perf_counter() - t0)
    finally:
        conn.close()
        runner = box["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    return rate


def main() -> int:
    """Build the fleet's requests, run each configuration, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--db-dir", type=Path, default=None,
                    help="where the SQLite files go (default: a temporary directory)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    registry, rounds = build_requests(args.devices, args.rounds, args.seed)
    n = args.devices * args.rounds
    print(f"{args.devices} device logs × {args.rounds} checkpoints ({n} requests, built in "
          f"{time.perf_counter() - t0:.1f} s); the fleet needs {args.devices / 60:.1f} cosignatures/s")
    cosigner = Cosigner("witness.bench/w1", Ed25519PrivateKey.generate())
    bare = max(bare_rate(n) for _ in range(3))  # best of three: the cores are shared
    results: list[tuple[str, float]] = [("bare Ed25519 verify+sign", bare)]
    with tempfile.TemporaryDirectory(dir=args.db_dir) as tmp:
        configs: list[tuple[str, Callable[[], WitnessState], Runner]] = [
            ("direct/memory", MemoryWitnessState, run_direct),
            ("direct/sqlite", lambda: SqliteWitnessState(Path(tmp) / "direct.db"), run_direct),
        ]
        if not args.no_http:
            configs.append(("http/sqlite", lambda: SqliteWitnessState(Path(tmp) / "http.db"), run_http))
        for name, make_state, run in configs:
            state = make_state()
            results.append((name, run(Witness(cosigner=cosigner, state=state, registry=registry), rounds)))
            if isinstance(state, SqliteWitnessState):
                state.close()
    need = args.devices / 60
    print(f"{'configuration':28} {'cosig/s':>9} {'÷ bare':>7} {'× fleet need':>13}")
    for name, rate in results:
        print(f"{name:28} {rate:9.0f} {rate / bare:7.2f} {rate / need:13.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
