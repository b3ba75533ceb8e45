"""The product's eviction path end to end: a real agent on simulated hardware records, a
loopback collection station receipts what it received, the disk then runs low, and the agent
makes room by deleting receipted segments -- never one the station does not hold -- logging
each deletion with the receipt that permits it, so that ``bodycam verify`` explains every
missing file.

Only public entry points are used: the :class:`Agent`, its control socket (what ``bodycam ctl``
sends: ``press``, ``stop``, ``status``, ``sim storage fill``), the loopback station of
``bodycam run --with-station``, the evidence log file and the offline verifier.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.app import Agent
from agent.command.ctl_client import ctl_request
from agent.config import parse_config
from agent.evidence.canonical import parse_canonical
from agent.evidence.keys import DeviceKey
from agent.evidence.log import replay_entries
from agent.evidence.verify import verify
from agent.offload.loopback import start_loopback
from agent.testing import wait_for

pytestmark = pytest.mark.timeout(180)

RAW: dict[str, dict[str, Any]] = {
    "video": {"width": 320, "height": 240, "bitrate": 400_000, "fps": 15, "gop": 15},
    "recording": {"prerecord_s": 1, "segment_s": 2},
    "gps": {"source": "none"},
    "storage": {"min_retention_h": 0, "poll_s": 0.2},
    "sim": {"storage_quota_mb": 4000, "gps_route": "none"},
}


def ctl(data: Path, cmd: str, **args: Any) -> dict[str, Any]:
    """One ``bodycam ctl`` request; its result (fails the test on a refusal)."""
    reply = ctl_request(data, cmd, args, timeout=10)
    assert reply.get("ok"), reply
    result: dict[str, Any] = reply.get("result") or {}
    return result


def log_entries(data: Path) -> list[dict[str, Any]]:
    """The evidence log as written (entries.bin replayed), index = position."""
    rep = replay_entries((data / "log" / "entries.bin").read_bytes())
    return [parse_canonical(r) for r in rep.records]


def media_by_seq(data: Path) -> dict[int, Path]:
    """device_seq → the media file each sealed manifest names (whether or not it exists)."""
    out: dict[int, Path] = {}
    for env in (data / "recordings").glob("*/*.manifest.json"):
        m = parse_canonical(env.read_bytes())["manifest"]
        out[int(m["device_seq"])] = env.with_name(m["file"]["name"])
    return out


def record_until(data: Path, done: Callable[[dict[str, Any]], bool], what: str) -> None:
    """Press record, wait for ``done(status)``, stop and wait for standby."""
    ctl(data, "press")
    wait_for(lambda: done(ctl(data, "status")), 45.0, what)
    ctl(data, "stop")
    wait_for(lambda: ctl(data, "status")["state"] == "standby", 45.0, "standby")


class Bench:
    """An agent on simulated hardware offloading to a loopback station."""

    def __init__(self, data: Path) -> None:
        self.data = data
        cfg, self.station = start_loopback(parse_config(RAW), data)
        self.agent: Agent | None = Agent(cfg, data_dir=data, hw_kind="sim")

    def stop_agent(self) -> None:
        """Shut the agent down (seals, re-signs the log); once."""
        agent, self.agent = self.agent, None
        if agent is not None:
            agent.shutdown()


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    """The bench, started; agent and station stopped after the test."""
    b = Bench(tmp_path / "evidence")
    try:
        assert b.agent is not None
        b.agent.start()
        yield b
    finally:
        try:
            b.stop_agent()
        finally:
            b.station.stop()


def test_low_storage_evicts_receipted_segments_only_and_verify_explains_each(
        bench: Bench) -> None:
    """Segments recorded while the station is up are receipted; segments recorded after it went
    away are not. When the disk then runs low the agent deletes the oldest receipted segments
    (as many as it needs), logs each deletion citing the acknowledged entry and receipt of
    exactly that segment, keeps every unreceipted segment, and verify with the station key
    passes, naming each eviction."""
    data, station = bench.data, bench.station
    receipt_key = station.receipt_key()
    record_until(data, lambda s: s.get("offload_receipts", 0) >= 3, "three station receipts")
    station.stop()  # from now on nothing can be receipted
    sealed = ctl(data, "status")["segments_sealed"]
    record_until(data, lambda s: s["segments_sealed"] >= sealed + 2,
                 "two segments recorded with the station away")
    acked_before = {e["device_seq"] for e in log_entries(data) if e.get("type") == "acknowledged"}
    on_disk = media_by_seq(data)
    unacked = set(on_disk) - acked_before
    assert acked_before and unacked, (acked_before, unacked)

    st = ctl(data, "status")
    # Leave less free than the reserve: the disk is full until the agent makes room.
    ctl(data, "sim", device="storage", verb="fill",
        value=str(st["storage_free_bytes"] - st["storage_reserve_bytes"] // 4))
    # The disk is polled every 0.2 s: an eviction follows within a second; waiting longer
    # only slows down finding out that none comes.
    wait_for(lambda: any(e.get("type") == "eviction" for e in log_entries(data)), 15,
             "an eviction in the log")
    # Settled: enough room was made, or every receipted segment is gone and it is still full.
    wait_for(lambda: ctl(data, "status").get("storage_level") != "full"
             or not any(on_disk[s].exists() for s in acked_before), 15,
             "the eviction pass to settle")
    level = ctl(data, "status").get("storage_level")
    bench.stop_agent()

    entries = log_entries(data)
    acked = {e["device_seq"] for e in entries if e.get("type") == "acknowledged"}
    assert acked == acked_before  # the station was away: no receipt arrived since
    evictions = [(i, e) for i, e in enumerate(entries) if e.get("type") == "eviction"]
    evicted = {e["device_seq"] for _, e in evictions}
    # The oldest receipted segments, as many as needed: all of them only if still full.
    assert evicted and evicted == set(sorted(acked)[:len(evicted)]), (evicted, acked)
    assert evicted == acked or level != "full", (evicted, acked, level)
    assert len(evictions) == len(evicted)  # each segment deleted (and logged) once
    for i, e in evictions:
        ack = entries[e["ack_index"]]
        assert e["ack_index"] < i and ack["type"] == "acknowledged"
        for k in ("device_seq", "cipher_sha256", "manifest_sha256", "receipt_sha256"):
            assert e[k] == ack[k], (k, e, ack)
        assert ack["receipt"]["receipt"]["device_seq"] == e["device_seq"]
        assert not on_disk[e["device_seq"]].exists()
    for seq in unacked:
        assert on_disk[seq].exists(), f"unreceipted segment {seq} was deleted"

    pub = DeviceKey.load(data / "keys" / "device.key").public_bytes
    report = verify(data, pubkeys=[pub], station_keys=[base64.b64decode(receipt_key)])
    assert report.ok, report.render()
    assert "receipts_unchecked" not in report.codes()
    named = {f.where for f in report.findings if f.code == "evicted"}
    assert len(named) == len(evicted), report.render()
