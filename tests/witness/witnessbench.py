"""Test bench for the witness: real device logs, a witness over real state, a real HTTP server.

``DeviceLogBench`` is a device's evidence log (the shipped :class:`EvidenceLog` with a key
generated at run time); ``serve_witness`` mounts ``Witness.handle_add_checkpoint`` in an
aiohttp application on a loopback port, the way a collection station would.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.evidence.keys import DeviceKey
from agent.evidence.log import EvidenceLog, origin_for
from agent.witness import Cosigner, StaticKeyRegistry, Witness, WitnessState
from agent.witness.cosign_rule import RefusalHook
from agent.witness.protocol import MAX_REQUEST_BYTES


class DeviceLogBench:
    """A device's real evidence log; ``grow(n)`` appends ``n`` events."""

    def __init__(self, directory: Path, *, device_id: str = "BC-0001",
                 key: DeviceKey | None = None) -> None:
        self.key = key or DeviceKey.generate(directory / "keys" / "device.key")
        self.origin = origin_for(device_id)
        self.log = EvidenceLog(directory / "log", self.key, self.origin)

    def grow(self, n: int, tag: str = "a") -> bytes:
        """Append ``n`` events; the newest signed checkpoint."""
        for _ in range(n):
            self.log.append({"kind": "event", "type": "boot", "utc": "2026-11-30T00:00:00Z",
                             "n": self.log.size, "tag": tag})
        return self.log.checkpoint()

    def close(self) -> None:
        """Release the log."""
        self.log.close()


def make_witness(state: WitnessState, *devices: DeviceLogBench, name: str = "witness.test/w1",
                 seed: bytes | None = None, on_refusal: RefusalHook | None = None) -> Witness:
    """A witness trusting ``devices``' keys for their origins."""
    private = Ed25519PrivateKey.from_private_bytes(seed) if seed else Ed25519PrivateKey.generate()
    registry = StaticKeyRegistry.of_devices({d.origin: [d.key.public_bytes] for d in devices})
    return Witness(cosigner=Cosigner(name, private), state=state, registry=registry,
                   on_refusal=on_refusal)


@contextlib.contextmanager
def serve_witness(witness: Witness, prefix: str = "/w", port: int = 0) -> Iterator[str]:
    """Serve ``witness`` on 127.0.0.1 (aiohttp, own loop thread); yields the submission URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    box: dict[str, object] = {}

    async def add_checkpoint(request: web.Request) -> web.Response:
        body = await request.read()
        status, ctype, out = await asyncio.to_thread(witness.handle_add_checkpoint, body)
        return web.Response(status=status, body=out, headers={"Content-Type": ctype})

    async def start() -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post(f"{prefix}/add-checkpoint", add_checkpoint)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, reuse_address=True)
        await site.start()
        box["runner"] = runner
        box["port"] = runner.addresses[0][1]
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    assert started.is_set()
    try:
        yield f"http://127.0.0.1:{box['port']}{prefix}"
    finally:
        runner = box["runner"]
        assert isinstance(runner, web.AppRunner)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def race_worker(tag: int, db: str, registry_keys: dict[str, bytes],  # noqa: PLR0917 - a Process target
                seed: bytes, jobs: list[tuple[str, bytes]], barrier: object, out: object) -> None:
    """One process of the two-process race: per origin, wait at the barrier, then submit."""
    from agent.witness import SqliteWitnessState

    state = SqliteWitnessState(Path(db))
    witness = Witness(cosigner=Cosigner("witness.test/w1", Ed25519PrivateKey.from_private_bytes(seed)),
                      state=state, registry=StaticKeyRegistry.of_devices(
                          {o: [k] for o, k in registry_keys.items()}))
    results = []
    for origin, body in jobs:
        barrier.wait(30)  # type: ignore[attr-defined]
        status, _, reply = witness.handle_add_checkpoint(body)
        results.append((origin, status, reply))
    out.put((tag, results))  # type: ignore[attr-defined]
    state.close()
