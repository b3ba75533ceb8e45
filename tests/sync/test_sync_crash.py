"""The device process SIGKILLed: Last Will on the broker side, nothing lost from the outbox."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_harness import BackOffice, Broker, back_office, dedupe_seqs

pytestmark = pytest.mark.timeout(90)
HARNESS = Path(__file__).with_name("link_harness.py")
DEV = "cam-k"


class DeviceProcess:
    def __init__(self, db: Path, broker: Broker, count: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HARNESS), str(db), f"mqtt://{broker.host}:{broker.port}", DEV,
             str(count)], stdout=subprocess.PIPE, text=True)
        self.seqs: list[int] = []
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip() == "ready":
                break
            self.seqs.append(int(line))

    def wait_stats(self, text: str, timeout: float = 15.0) -> None:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            if text in line:
                return
            assert time.monotonic() < deadline, f"harness never reported {text!r}"
        raise AssertionError("harness exited")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


@pytest.fixture
def bo(plain_broker: Broker) -> Iterator[BackOffice]:
    with back_office(plain_broker.host, plain_broker.port) as office:
        yield office


def statuses(bo: BackOffice) -> list[tuple[str, int, str | None]]:
    return [(d["state"], d["session"], d.get("cause"))
            for d in (m.json() for m in bo.on("/status"))]


def test_sigkill_while_online_fires_the_last_will(plain_broker: Broker, bo: BackOffice,
                                                  tmp_path: Path) -> None:
    """Killed while connected: the broker publishes offline with that session's counter."""
    dev = DeviceProcess(tmp_path / "o.db", plain_broker, 0)
    dev.wait_stats("connected=True")
    bo.wait_for(lambda ms: any(s[0] == "online" for s in statuses(bo)))
    dev.kill()
    bo.wait_for(lambda ms: any(s[0] == "offline" for s in statuses(bo)))
    (online,) = [s for s in statuses(bo) if s[0] == "online"]
    offline = [s for s in statuses(bo) if s[0] == "offline"]
    assert offline == [("offline", online[1], "connection_lost")]


def test_sigkill_while_offline_then_restart_delivers_everything_once(
    plain_broker: Broker, bo: BackOffice, tmp_path: Path
) -> None:
    """Enqueued with the broker down, process killed, broker and process restarted: all arrive."""
    db = tmp_path / "o.db"
    first = DeviceProcess(db, plain_broker, 10)
    first.wait_stats("connected=True")
    bo.wait_for(lambda ms: len(dedupe_seqs(ms, "/event")) == 10)
    first.wait_stats("depth=0 ")  # acknowledged rows have left the outbox
    plain_broker.kill()
    first.kill()
    second = DeviceProcess(db, plain_broker, 25)  # the broker is down: all 25 stay queued
    second.wait_stats("depth=25 ")
    second.kill()
    plain_broker.start()
    third = DeviceProcess(db, plain_broker, 0)
    try:
        bo.wait_for(lambda ms: len(dedupe_seqs(ms, "/event")) == 35, timeout=30)
        third.wait_stats("depth=0 ")
    finally:
        third.kill()
    assert dedupe_seqs(bo.messages, "/event") == first.seqs + second.seqs
    assert second.seqs == list(range(11, 36))
    # Each (re)connection announces a new, larger session (retained copies repeat old ones).
    sessions = list(dict.fromkeys(s[1] for s in statuses(bo) if s[0] == "online"))
    assert sessions == sorted(sessions) and len(sessions) >= 2
