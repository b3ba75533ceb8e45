"""A network namespace behind a veth pair, for real link cuts (DESIGN: network namespaces).

The process under test stays in the host namespace and reaches the peer (a broker, a
station) through the host end of the veth; taking that end down is a cut the peer's side
does not see. Names and the /30 are this process's own, so test processes run side by side.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

__all__ = ["Net", "ip", "veth_namespace"]


@dataclass(frozen=True)
class Net:
    """The namespace, the host end of the veth and the two addresses."""

    ns: str
    host_if: str
    host_ip: str
    ns_ip: str


def ip(*args: str, ns: str | None = None) -> None:
    """Run ``ip ARGS`` (inside ``ns`` if given); a failure raises CalledProcessError."""
    cmd = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    subprocess.run(cmd, check=True, capture_output=True)


def _subnet(pid: int) -> tuple[int, int]:
    """This process's /30: the third octet and the block's first address (distinct for any
    two pids less than 16 000 apart)."""
    return (pid >> 6) % 250, (pid % 64) * 4


@contextlib.contextmanager
def veth_namespace(prefix: str, net16: str) -> Iterator[Net]:
    """A namespace ``<prefix><pid>`` joined to the host by a veth pair in a /30 of ``net16``
    (e.g. ``"10.213"``); skips the test where namespaces cannot be created (not root, no
    iproute2, no CAP_NET_ADMIN), removes both ends after."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    tag = f"{os.getpid() % 10000}"
    a, b = _subnet(os.getpid())
    peer = f"{prefix}n{tag}"
    net = Net(f"{prefix}{tag}", f"{prefix}h{tag}", f"{net16}.{a}.{b + 1}",
              f"{net16}.{a}.{b + 2}")
    try:
        ip("netns", "add", net.ns)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace: {exc.stderr.decode().strip()}")
    try:
        ip("link", "add", net.host_if, "type", "veth", "peer", "name", peer)
        ip("link", "set", peer, "netns", net.ns)
        ip("addr", "add", f"{net.host_ip}/30", "dev", net.host_if)
        ip("link", "set", net.host_if, "up")
        ip("addr", "add", f"{net.ns_ip}/30", "dev", peer, ns=net.ns)
        ip("link", "set", peer, "up", ns=net.ns)
        ip("link", "set", "lo", "up", ns=net.ns)
        yield net
    finally:
        subprocess.run(["ip", "netns", "del", net.ns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", net.host_if], check=False, capture_output=True)
