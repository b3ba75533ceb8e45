"""A real network cut: the broker in its own network namespace behind a veth pair.

The device (this process) reaches the broker through the host end of the veth; the back
office (``mosquitto_sub``) runs inside the namespace, so it keeps seeing the broker while the
device's link is down, which is exactly when the Last Will must appear.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mqtt_harness import Broker, device_key, free_port, plain_broker_conf, sample_birth

from agent.sync.link import MqttLink
from agent.sync.outbox import Outbox
from tests.tools.netns import Net, ip, veth_namespace

pytestmark = pytest.mark.timeout(60)
DEV = "cam-n"


@pytest.fixture
def netns() -> Iterator[Net]:
    """A namespace with a veth pair; skipped where namespaces cannot be created."""
    with veth_namespace("bcs", "10.213") as net:
        yield net


@dataclass
class NsSubscriber:
    """``mosquitto_sub`` inside the namespace, collecting ``topic payload`` lines."""

    proc: subprocess.Popen[str]
    lines: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            topic, _, payload = line.rstrip("\n").partition(" ")
            with self.cond:
                self.lines.append((topic, json.loads(payload)))
                self.cond.notify_all()

    def wait_for(self, predicate: object, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate(self.lines):  # type: ignore[operator]
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; last lines: {self.lines[-5:]}"
                self.cond.wait(left)


def events(lines: list[tuple[str, dict[str, object]]]) -> list[int]:
    return list(dict.fromkeys(int(str(d["seq"])) for t, d in lines if t.endswith("/event")))


def status(lines: list[tuple[str, dict[str, object]]]) -> list[tuple[object, object, object]]:
    return [(d["state"], d["session"], d.get("cause")) for t, d in lines
            if t.endswith("/status")]


def _wait_subscribed(sub: NsSubscriber, ns: str, host: str, port: int) -> None:
    """Publish probes from inside the namespace until the subscriber has seen one."""
    deadline = time.monotonic() + 10
    while not any(t.endswith("/probe") for t, _ in sub.lines):
        assert time.monotonic() < deadline, "subscriber never came up"
        subprocess.run(["ip", "netns", "exec", ns, "mosquitto_pub", "-h", host, "-p", str(port),
                        "-t", "bodycam/v1/test/probe", "-m", "{}"], check=True)
        with sub.cond:
            sub.cond.wait(0.2)


def test_network_cut_fires_the_will_and_loses_nothing(netns: Net, tmp_path: Path) -> None:
    """Link down for ~10 s: Will offline(N) seen, then online(>N) and every event once, in order."""
    port = free_port()
    work = tmp_path / "broker"
    work.mkdir()
    broker = Broker(plain_broker_conf(work, port, host=netns.ns_ip), netns.ns_ip, port, work,
                    netns=netns.ns)
    broker.start()
    sub = NsSubscriber(subprocess.Popen(
        ["ip", "netns", "exec", netns.ns, "mosquitto_sub", "-V", "mqttv5", "-h", netns.ns_ip,
         "-p", str(port), "-q", "1", "-t", "bodycam/v1/#", "-F", "%t %p"],
        stdout=subprocess.PIPE, text=True))
    threading.Thread(target=sub.pump, daemon=True).start()
    box = Outbox(tmp_path / "o.db")
    link = MqttLink(device_id=DEV, outbox=box, url=f"mqtt://{netns.ns_ip}:{port}", tls=None,
                    allow_plaintext=True, on_command=print, birth=sample_birth(device_key()),
                    keepalive=5, reconnect=(0.2, 1.0))
    try:
        _wait_subscribed(sub, netns.ns, netns.ns_ip, port)
        link.start()
        sent = [link.enqueue_event({"type": "warning", "n": n}) for n in range(5)]
        sub.wait_for(lambda ls: len(events(ls)) == 5)
        session = link.stats().session
        ip("link", "set", netns.host_if, "down")
        sent += [link.enqueue_event({"type": "warning", "n": n}) for n in range(5, 15)]
        sub.wait_for(lambda ls: ("offline", session, "connection_lost") in status(ls))
        assert len(events(sub.lines)) == 5  # nothing got through the cut
        ip("link", "set", netns.host_if, "up")
        sub.wait_for(lambda ls: len(events(ls)) == 15)
    finally:
        link.stop()
        sub.proc.terminate()
        sub.proc.wait(5)
        broker.kill()
    assert events(sub.lines) == sent
    states = status(sub.lines)
    will = states.index(("offline", session, "connection_lost"))
    later_online = [s for s in states[will:] if s[0] == "online"]
    assert later_online and all(int(str(s[1])) > session for s in later_online)
    assert box.depth() == 0
