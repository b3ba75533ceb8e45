"""A device process that only offloads (``python -m tests.offload.device_child CONFIG.json``):
the offload tests SIGKILL it mid-upload and resume in another process."""

from __future__ import annotations

import base64
import json
import sys
import threading
from pathlib import Path

from agent.config import OffloadConfig
from agent.evidence.age import Identity
from agent.evidence.keys import DeviceKey
from agent.evidence.store import EvidenceStore
from agent.offload.wiring import build_offloader


def main(path: str) -> None:
    doc = json.loads(Path(path).read_text())
    data = Path(doc["data"])
    cfg = OffloadConfig(**doc["offload"])
    store = EvidenceStore(data, key=DeviceKey.load(data / "keys" / "device.key"),
                          recipients=[Identity.generate().recipient], encrypt=True,
                          device_id=doc["device_id"],
                          station_keys=[base64.b64decode(k) for k in cfg.station_keys])
    off = build_offloader(cfg, store, device_id=doc["device_id"], data_dir=data,
                          strained=lambda: False, chunk_bytes=doc["chunk"])
    off.start()
    print("offloading", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1])
