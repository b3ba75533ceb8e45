"""The segment worker: jobs in order, callbacks on the caller's poll, drain waits for all.

No lock is taken per job (the backlog is two single-writer counters and drain queues a marker
job of its own), so these check what the lock used to guarantee."""

from __future__ import annotations

import threading
from typing import Any

from agent.recording.segment_worker import SegmentWorker


def test_backlog_counts_unfinished_jobs_and_drain_waits_for_every_one() -> None:
    gate = threading.Event()
    ran: list[int] = []
    outcomes: list[tuple[Any, BaseException | None]] = []
    wakes: list[int] = []
    worker = SegmentWorker(name="test-writer", wake=lambda: wakes.append(1))
    try:
        worker.submit(gate.wait)  # holds the thread until released
        for i in range(20):
            worker.submit(lambda i=i: ran.append(i) or i,
                          lambda result, error: outcomes.append((result, error)))
        worker.submit(lambda: ran.append(-1), lambda r, e: outcomes.append((r, e)),
                      errors_only=True)
        assert worker.backlog == 22 and ran == [] and outcomes == []
        threading.Timer(0.0, gate.set).start()  # released from elsewhere while drain waits
        worker.drain()
        assert worker.backlog == 0
        assert ran == [*range(20), -1]
        assert outcomes == [(i, None) for i in range(20)], "in order, errors_only kept quiet"
        assert len(wakes) == 20
        worker.drain()  # nothing pending: returns at once
    finally:
        gate.set()
        worker.close()


def test_a_failing_job_reaches_its_callback_and_the_rest_still_run() -> None:
    worker = SegmentWorker(name="test-writer")
    got: list[Any] = []

    def boom() -> None:
        raise OSError(5, "disk gone")

    try:
        worker.submit(boom, lambda r, e: got.append(e), errors_only=True)
        worker.submit(lambda: 7, lambda r, e: got.append(r))
        worker.drain()
        assert isinstance(got[0], OSError) and got[1] == 7 and worker.backlog == 0
    finally:
        worker.close()
