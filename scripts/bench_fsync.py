#!/usr/bin/env python3
"""fsyncs of the evidence path, counted by the kernel: per seal, per segment open, per settle.

Each fsync costs 5-50 ms on a microSD card (a cache flush the card must finish), so the count
is what a seal costs on the device whatever this machine's disk does. A fresh process opens a
store, records ``--segments`` segments of one recording (200 KB each) and closes the store,
under ``strace``; marker syscalls delimit each ``open_segment``, ``seal`` and ``close``.
With ``--card-ms`` the projected time on a card at that cost per fsync is printed too.

    .venv/bin/python scripts/bench_fsync.py [--segments 5] [--card-ms 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agent.evidence.age import Identity  # noqa: E402 (after the sys.path line)
from agent.evidence.keys import DeviceKey  # noqa: E402
from agent.storage.crash_check import trace_python  # noqa: E402

_MARK = "/nonexistent/bench-fsync-"

_CODE = """
import os, uuid
from pathlib import Path
from agent.evidence.age import Recipient
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import ClockInfo, MediaInfo, SegmentInfo, Timestamp
from agent.evidence.store import EvidenceStore

def mark(what):
    try:
        os.open({mark!r} + what, os.O_RDONLY)
    except OSError:
        pass

data = Path({data!r})
store = EvidenceStore(data, key=DeviceKey.load(data / "keys" / "device.key"),
                      recipients=[Recipient.parse({recipient!r})], encrypt=True,
                      device_id="BC-0001")
rid = uuid.uuid4().hex
for seq in range({segments}):
    mark("open")
    seg = store.open_segment(SegmentInfo(rid, seq, Timestamp("2026-11-27T10:00:00.000000Z",
                                         seq * 10_000_000), ClockInfo("gps", 20)))
    mark("write")
    for _ in range(50):
        seg.sink.write(os.urandom(4096))
    mark("seal")
    store.seal(seg, end=Timestamp("2026-11-27T10:00:10.000000Z", (seq + 1) * 10_000_000),
               media=MediaInfo())
    mark("idle")
mark("close")
store.close()
mark("idle")
"""


def count(segments: int) -> dict[str, list[int]]:
    """fsync/fdatasync calls per phase (one list entry per occurrence of the phase)."""
    data = Path(tempfile.mkdtemp(prefix="bench-fsync-")) / "data"
    DeviceKey.generate(data / "keys" / "device.key")
    code = _CODE.format(mark=_MARK, data=str(data), recipient=str(Identity.generate().recipient),
                        segments=segments)
    phases: dict[str, list[int]] = {"open": [], "seal": [], "close": []}
    current: str | None = None
    for call in trace_python(code):
        if call.name in ("openat", "open") and call.paths and call.paths[0].startswith(_MARK):
            current = call.paths[0].removeprefix(_MARK)
            if current in phases:
                phases[current].append(0)
        elif current in phases and call.name in ("fsync", "fdatasync"):
            phases[current][-1] += 1
    return phases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=5)
    ap.add_argument("--card-ms", type=float, default=20.0, help="assumed cost of one fsync")
    args = ap.parse_args()
    phases = count(args.segments)
    seal, opened, close = phases["seal"], phases["open"], phases["close"]
    per_segment = (sum(seal) + sum(opened) + sum(close)) / args.segments
    print(f"fsyncs per seal:          {seal}  (max {max(seal)}; target <= 3)")
    print(f"fsyncs per segment open:  {opened}")
    print(f"fsyncs at store close:    {close}  (settle: folder fsync + checkpoint file)")
    # In the agent a timer settles about a second after each seal (segments last a minute),
    # so every segment pays one settle; here the segments are instants apart and share it.
    agent = sum(opened) / len(opened) + sum(seal) / len(seal) + max(close)
    print(f"fsyncs per segment, all:  {per_segment:.1f} here (one settle for all), "
          f"{agent:.1f} at the agent's cadence (one settle per segment)")
    print(f"at {args.card_ms:g} ms per fsync on a card: seal {max(seal) * args.card_ms:.0f} ms, "
          f"a segment's evidence path {agent * args.card_ms:.0f} ms")


if __name__ == "__main__":
    main()
