"""The durable outbox: order, never-reused seqs, link state, and survival of SIGKILL."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.sync.outbox import Outbox
from hw.errors import SyncError


def test_fifo_and_delete_only_what_was_acknowledged(tmp_path: Path) -> None:
    """Rows come back oldest first and only delivered rows leave."""
    box = Outbox(tmp_path / "o.db")
    seqs = [box.enqueue(f"t/{i}", f"p{i}".encode(), kind="event") for i in range(5)]
    assert seqs == sorted(seqs)
    assert [m.topic for m in box.pending(3)] == ["t/0", "t/1", "t/2"]
    assert [m.seq for m in box.pending(10, after=seqs[2])] == seqs[3:]
    assert box.mark_delivered(seqs[1], seqs[3], 999) == 2
    assert [m.seq for m in box.pending(10)] == [seqs[0], seqs[2], seqs[4]]
    assert box.depth() == 3


def test_seq_is_never_reused_after_the_outbox_empties(tmp_path: Path) -> None:
    """A delivered seq never comes back: the back office would discard it as a duplicate."""
    box = Outbox(tmp_path / "o.db")
    first = box.enqueue("t", b"a", kind="event")
    box.mark_delivered(first)
    box.close()
    box = Outbox(tmp_path / "o.db")
    assert box.depth() == 0
    assert box.enqueue("t", b"b", kind="event") == first + 1


def test_payload_can_embed_its_own_seq(tmp_path: Path) -> None:
    """A callable payload receives the seq inside the same transaction."""
    box = Outbox(tmp_path / "o.db")
    seq = box.enqueue("t", lambda s: f"seq={s}".encode(), qos=1, retain=True, kind="segment")
    (msg,) = box.pending()
    assert msg.payload == f"seq={seq}".encode()
    assert msg.retain is True and msg.kind == "segment" and msg.qos == 1


def test_database_is_wal(tmp_path: Path) -> None:
    """The file is in WAL mode (so readers never block the enqueuing writer)."""
    Outbox(tmp_path / "o.db").enqueue("t", b"x", kind="event")
    with sqlite3.connect(tmp_path / "o.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_bad_arguments_are_sync_errors(tmp_path: Path) -> None:
    """Wildcard topics and invalid QoS are refused before anything is written."""
    box = Outbox(tmp_path / "o.db")
    with pytest.raises(SyncError, match="topic"):
        box.enqueue("a/#", b"x", kind="event")
    with pytest.raises(SyncError, match="qos"):
        box.enqueue("a", b"x", qos=3, kind="event")
    assert box.depth() == 0


def test_session_counter_and_epoch_persist(tmp_path: Path) -> None:
    """The Last Will session counter only grows, across reopenings; the epoch is stable."""
    box = Outbox(tmp_path / "o.db")
    epoch = box.epoch
    assert [box.next_session(), box.next_session()] == [1, 2]
    box.close()
    box = Outbox(tmp_path / "o.db")
    assert box.next_session() == 3
    assert box.epoch == epoch
    assert Outbox(tmp_path / "other.db").epoch != epoch


def test_command_ids_are_remembered_within_the_horizon(tmp_path: Path) -> None:
    """A repeated id is refused until it is older than the horizon, across reopenings."""
    box = Outbox(tmp_path / "o.db")
    assert box.remember_command("c1", now=1000.0, horizon_s=60)
    box.close()
    box = Outbox(tmp_path / "o.db")
    assert not box.remember_command("c1", now=1030.0, horizon_s=60)
    assert box.remember_command("c1", now=1061.0, horizon_s=60)


def test_concurrent_enqueues_get_unique_seqs(tmp_path: Path) -> None:
    """Several threads enqueueing at once never share or lose a seq."""
    box = Outbox(tmp_path / "o.db")
    got: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(25):
            seq = box.enqueue("t", f"{n}-{i}".encode(), kind="event")
            with lock:
                got.append(seq)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(got)) == 100
    assert box.depth() == 100 == len(box.pending(1000))


_WRITER = """
import sys
from agent.sync.outbox import Outbox
box = Outbox(sys.argv[1])
i = 0
while True:
    seq = box.enqueue("t", b"x" * 512, kind="event")
    print(seq, flush=True)
    i += 1
"""


@pytest.mark.timeout(60)
def test_every_returned_enqueue_survives_sigkill(tmp_path: Path) -> None:
    """A process killed mid-stream loses none of the rows whose enqueue had returned."""
    db = tmp_path / "o.db"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db)], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2], text=True)
    assert proc.stdout is not None
    acknowledged = [int(proc.stdout.readline()) for _ in range(200)]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    stored = {m.seq for m in Outbox(db).pending(100_000)}
    assert set(acknowledged) <= stored
    assert acknowledged == list(range(1, 201))


_TRACED_ENQUEUE = """
import os, sys
from agent.sync.outbox import Outbox
box = Outbox(sys.argv[1] if len(sys.argv) > 1 else {db!r})
box.enqueue("t", b"warm-up", kind="event")
os.write(1, b"ENQUEUE-BEGIN")
seq = box.enqueue("t", b"evidence", kind="event")
os.write(1, b"ENQUEUE-END")
box.mark_delivered(seq)
os.write(1, b"DELETE-END")
"""


def _between(calls: list, start: bytes, end: bytes) -> list:
    names = [i for i, c in enumerate(calls) if c.name == "write" and c.fd == 1]
    first = next(i for i in names if start.decode() in calls[i].args)
    last = next(i for i in names if end.decode() in calls[i].args)
    return calls[first + 1 : last]


@pytest.mark.timeout(60)
def test_enqueue_fsyncs_the_wal_before_returning(tmp_path: Path) -> None:
    """Under strace: the WAL is written and fsync'd between the start and end of enqueue."""
    crash_check = pytest.importorskip("agent.storage.crash_check")
    db = tmp_path / "o.db"
    try:
        calls = crash_check.trace_python(_TRACED_ENQUEUE.format(db=str(db)))
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    wal_fds = {c.result for c in calls
               if c.name in ("openat", "open") and any(p.endswith("o.db-wal") for p in c.paths)}
    during = _between(calls, b"ENQUEUE-BEGIN", b"ENQUEUE-END")
    writes = [i for i, c in enumerate(during)
              if c.name in ("write", "pwrite64") and c.fd in wal_fds]
    syncs = [i for i, c in enumerate(during)
             if c.name in ("fsync", "fdatasync") and c.fd in wal_fds]
    assert writes, "enqueue did not write the WAL"
    assert syncs and syncs[-1] > writes[-1], "enqueue returned before fsyncing the WAL"
    deleting = _between(calls, b"ENQUEUE-END", b"DELETE-END")
    assert not [c for c in deleting if c.name in ("fsync", "fdatasync")], \
        "deleting a delivered row should not cost an fsync"
