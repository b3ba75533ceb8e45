"""SideChannel: a consumer's failure is returned as False, counted and logged without flooding."""

from __future__ import annotations

import logging

import pytest

from agent.side_channel import SideChannel


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_failure_is_counted_and_never_raised() -> None:
    """The caller gets False; the count and the last error say what happened."""
    got: list[int] = []

    def consumer(n: int) -> None:
        got.append(n)
        if n % 2:
            raise OSError(30, "Read-only file system")

    channel = SideChannel("state file", consumer)
    assert [channel(n) for n in range(4)] == [True, False, True, False]
    assert got == [0, 1, 2, 3]
    assert channel.status() == {"calls": 4, "failures": 2,
                                "last_error": "OSError: [Errno 30] Read-only file system"}


def test_only_exceptions_are_contained() -> None:
    """A KeyboardInterrupt or SystemExit still ends the process."""

    def consumer() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        SideChannel("x", consumer)()


def test_a_consumer_failing_at_every_packet_logs_once_per_ten_seconds(
        caplog: pytest.LogCaptureFixture) -> None:
    """The first failure is logged with its traceback; then one line per 10 s saying how many
    were not logged."""
    clock = Clock()

    def consumer() -> None:
        raise RuntimeError("meter broken")

    channel = SideChannel("packet observer", consumer, clock=clock)
    with caplog.at_level(logging.ERROR, logger="agent.side_channel"):
        for i in range(300):  # ten seconds at 30 packets a second
            clock.t = i / 30
            channel()
        clock.t = 10.0
        channel()
    assert channel.failures == 301
    assert len(caplog.records) == 2
    assert caplog.records[0].exc_info and not caplog.records[1].exc_info
    assert "0 not logged" in caplog.records[0].getMessage()
    assert "299 not logged" in caplog.records[1].getMessage()
