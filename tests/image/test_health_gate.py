"""HealthGate feeds the systemd watchdog only while frames flow and the controller loop turns.

Each test drives a fake clock, a frame counter and a controller heartbeat by hand, ticks the
gate, and reads what a real service manager would have received on its socket.
"""

from __future__ import annotations

import math
import threading

import pytest
from notify_listener import NotifyListener

from agent.sdnotify import Notifier
from agent.upkeep.liveness import HealthGate


class Bench:
    """A hand-driven pipeline: a clock, a camera frame counter, a controller heartbeat."""

    def __init__(self) -> None:
        self.now = 100.0
        self.frames = 0
        self.beat = 100.0

    def advance(self, seconds: float, *, frames: int = 0, loop_turns: bool = True) -> None:
        self.now += seconds
        self.frames += frames
        if loop_turns:
            self.beat = self.now


def _gate(bench: Bench, listener: NotifyListener, **kwargs: object) -> HealthGate:
    return HealthGate(
        frames=lambda: bench.frames,
        heartbeat=lambda: bench.beat,
        notifier=Notifier(listener.env_value),
        clock=lambda: bench.now,
        **kwargs,  # type: ignore[arg-type]
    )


def _watchdogs(datagrams: list[dict[str, str]]) -> int:
    return sum(1 for d in datagrams if d.get("WATCHDOG") == "1")


def test_flowing_frames_feed_the_watchdog(path_listener: NotifyListener) -> None:
    """Every tick with fresh frames and a live loop sends WATCHDOG=1 with a status line."""
    bench = Bench()
    gate = _gate(bench, path_listener)
    gate.tick()  # first look: a baseline, not yet proof of flow
    for _ in range(5):
        bench.advance(0.5, frames=15)
        verdict = gate.tick()
        assert verdict.healthy
    got = path_listener.drain()
    assert _watchdogs(got) == 5
    assert got[-1]["STATUS"] == "recording pipeline healthy: 30.0 fps"
    assert verdict.fps == 30.0


def test_ready_is_sent_once_when_frames_first_flow(path_listener: NotifyListener) -> None:
    """READY=1 waits for the first frame and is not repeated."""
    bench = Bench()
    gate = _gate(bench, path_listener)
    bench.advance(0.5)
    gate.tick()
    bench.advance(0.5)
    assert gate.tick().reason == "waiting for the first frame"
    assert not any("READY" in d for d in path_listener.drain())

    bench.advance(0.5, frames=3)
    gate.tick()
    bench.advance(0.5, frames=15)
    gate.tick()
    got = path_listener.drain()
    assert [d for d in got if "READY" in d] == [got[0]]
    assert got[0]["READY"] == "1"


def test_frames_that_stop_starve_the_watchdog(path_listener: NotifyListener) -> None:
    """Within stall_after_s of the last frame the watchdog is fed; after it, never."""
    bench = Bench()
    gate = _gate(bench, path_listener, stall_after_s=2.0)
    gate.tick()
    bench.advance(0.5, frames=15)
    gate.tick()
    path_listener.drain()

    bench.advance(1.5)  # 1.5 s without a frame: still inside the window
    assert gate.tick().healthy
    bench.advance(1.0)  # 2.5 s without a frame: stalled
    verdict = gate.tick()
    assert not verdict.healthy
    assert verdict.frame_age_s == pytest.approx(2.5)
    got = path_listener.drain()
    for _ in range(10):
        bench.advance(1.0)
        gate.tick()
        got += path_listener.drain()  # read promptly, as systemd does (the queue is short)
    assert _watchdogs(got) == 1  # only the in-window tick
    assert got[-1]["STATUS"].startswith("camera stalled: no frame for 12.5 s")


def test_watchdog_resumes_when_the_camera_recovers(path_listener: NotifyListener) -> None:
    """The agent's own camera restart (counter reset to zero) brings the feed back."""
    bench = Bench()
    gate = _gate(bench, path_listener)
    gate.tick()
    bench.advance(0.5, frames=100)
    gate.tick()
    bench.advance(3.0)
    assert not gate.tick().healthy
    bench.frames = 0  # a restarted camera starts counting again
    bench.advance(0.5, frames=10)
    assert gate.tick().healthy
    assert path_listener.drain()[-1]["WATCHDOG"] == "1"


def test_stale_controller_heartbeat_starves_the_watchdog(path_listener: NotifyListener) -> None:
    """Frames alone are not enough: a stuck controller loop also stops the feed."""
    bench = Bench()
    gate = _gate(bench, path_listener, stall_after_s=2.0)
    gate.tick()
    bench.advance(0.5, frames=15)
    assert gate.tick().healthy
    path_listener.drain()

    for _ in range(6):
        bench.advance(0.5, frames=15, loop_turns=False)
        gate.tick()
    verdict = gate.last
    assert verdict is not None
    assert not verdict.healthy
    assert verdict.loop_age_s == pytest.approx(3.0)
    got = path_listener.drain()
    assert _watchdogs(got) == 4  # heartbeat ages 0.5 .. 2.0 s pass, 2.5 and 3.0 s do not
    assert got[-1]["STATUS"] == "controller loop stalled: last turn 3.0 s ago"


def test_loop_window_can_differ_from_frame_window(path_listener: NotifyListener) -> None:
    """loop_stall_after_s bounds the heartbeat independently of the frame window."""
    bench = Bench()
    gate = _gate(bench, path_listener, stall_after_s=2.0, loop_stall_after_s=5.0)
    gate.tick()
    bench.advance(0.5, frames=15)
    gate.tick()
    bench.advance(1.0, frames=30, loop_turns=False)
    bench.advance(1.0, frames=30, loop_turns=False)
    bench.advance(1.0, frames=30, loop_turns=False)
    assert gate.tick().healthy  # heartbeat 3 s old, allowed 5 s


def test_never_a_frame_means_never_ready(path_listener: NotifyListener) -> None:
    """A camera that never starts leaves the service un-started for systemd's start timeout."""
    bench = Bench()
    bench.frames = 42  # frames before the gate existed prove nothing about now
    gate = _gate(bench, path_listener)
    for _ in range(5):
        bench.advance(1.0)
        verdict = gate.tick()
    assert not verdict.healthy
    assert math.isinf(verdict.frame_age_s)
    got = path_listener.drain()
    assert all("READY" not in d and "WATCHDOG" not in d for d in got)
    assert got[-1] == {"STATUS": "waiting for the first frame"}


def test_controller_summary_is_added_to_the_status(path_listener: NotifyListener) -> None:
    """The controller's own one-line state follows the health text."""
    bench = Bench()
    gate = _gate(bench, path_listener, summary=lambda: "recording segment 12")
    gate.tick()
    bench.advance(0.5, frames=15)
    gate.tick()
    assert path_listener.drain()[-1]["STATUS"] == (
        "recording pipeline healthy: 30.0 fps; recording segment 12"
    )


def test_recommended_tick_fits_the_watchdog_and_the_stall_window() -> None:
    """The tick period is short enough for both systemd's timeout and the stall window."""
    watched = Notifier(None, watchdog_usec=2_000_000)  # ping every 1 s -> tick every 0.5 s
    gate = HealthGate(frames=lambda: 0, heartbeat=lambda: 0.0, notifier=watched)
    assert gate.recommended_tick_s() == 0.5
    unwatched = HealthGate(
        frames=lambda: 0, heartbeat=lambda: 0.0, notifier=Notifier(None), stall_after_s=1.0
    )
    assert unwatched.recommended_tick_s() == 0.5


@pytest.mark.parametrize("kwargs", [{"stall_after_s": 0}, {"loop_stall_after_s": -1.0}])
def test_nonsense_windows_are_refused(kwargs: dict[str, float]) -> None:
    """A zero or negative window would starve or always feed the watchdog."""
    with pytest.raises(ValueError, match="positive"):
        HealthGate(frames=lambda: 0, heartbeat=lambda: 0.0, notifier=Notifier(None), **kwargs)


@pytest.mark.timeout(10)
def test_run_ticks_until_stopped_and_survives_a_failing_probe(
    path_listener: NotifyListener,
) -> None:
    """The timer loop keeps going past a probe that raises, without feeding the watchdog."""
    stop = threading.Event()
    calls = {"n": 0}

    def frames() -> int:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("driver counter unreadable")
        if calls["n"] >= 6:
            stop.set()
        return calls["n"]

    gate = HealthGate(frames=frames, heartbeat=lambda: 1e12, notifier=Notifier(path_listener.env_value))
    gate.run(stop, interval_s=0.01)
    assert calls["n"] == 6
    got = path_listener.drain()
    # ticks 1 (baseline), 2 (raised): no feed; ticks 3..6 saw the counter move.
    assert _watchdogs(got) == 4
