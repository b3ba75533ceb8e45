"""A real link cut: the station in its own network namespace behind a veth pair, the link
taken down twice in the middle of uploads. The device (this process) reaches the station
through the host end of the veth."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.testing import wait_for
from tests.offload.bench import OffloadBench
from tests.tools.netns import Net, ip, veth_namespace

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def netns() -> Iterator[Net]:
    """A namespace with a veth pair; skipped where namespaces cannot be created."""
    with veth_namespace("bco", "10.214") as net:
        yield net


def test_link_cuts_mid_upload_resend_at_most_the_chunk_in_flight(netns: Net,
                                                                 tmp_path: Path) -> None:
    """Three segments go out while the link is cut twice mid-upload: nothing is receipted or
    evictable during a cut, everything is receipted after it, the station holds each segment
    once, verified, and each cut costs at most the PATCH that was in flight."""
    bench = OffloadBench(tmp_path, listen=netns.ns_ip,
                         prefix=("ip", "netns", "exec", netns.ns), body_timeout_s=2)
    try:
        bench.up()
        store = bench.open_store()
        signed = bench.record(3, 600_000)
        total = sum(s.manifest["file"]["cipher_bytes"] for s in signed)
        chunk = 64 << 10
        off = bench.offloader(chunk_bytes=chunk, max_rate=400_000, timeout_s=2.0)
        off.start()
        try:
            for at in (250_000, 1_100_000):
                wait_for(lambda at=at: off.status().bytes_sent > at, what=f"{at} bytes out")
                ip("link", "set", netns.host_if, "down")
                wait_for(lambda: off.status().state == "unreachable", what="the cut noticed")
                receipted = off.status().receipts
                assert receipted < 3
                ip("link", "set", netns.host_if, "up")
            wait_for(lambda: all(store.acknowledged(i) for i in range(3)), timeout=60,
                     what="three receipts")
            resent = off.status().bytes_sent - total
        finally:
            off.close()
        print(f"link cuts: 2, bytes re-sent {resent} (PATCH size {chunk})")
        assert 0 <= resent <= 2 * 2 * chunk
        held = bench.station_segments()
        assert sorted(s["device_seq"] for s in held) == [0, 1, 2]
        assert {s["state"] for s in held} == {"verified"}
    finally:
        bench.close()
