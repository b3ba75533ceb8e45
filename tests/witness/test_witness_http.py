"""The device's client and pool against a witness served over real HTTP (aiohttp, loopback).

A real device log grows and is cosigned; a rewritten history under the same key is refused;
an unreachable witness is retried in the background while the caller never waits.
"""

from __future__ import annotations

import json
import socket
import time

import pytest
from witnessbench import DeviceLogBench, make_witness, serve_witness

from agent.witness import (
    OldSizeConflict,
    ProofRejected,
    SqliteWitnessState,
    UnknownOrigin,
    WitnessClient,
    WitnessPool,
    WitnessUnavailable,
    verified_cosignatures,
)


@pytest.fixture
def device(tmp_path):
    d = DeviceLogBench(tmp_path / "dev")
    yield d
    d.close()


@pytest.fixture
def state(tmp_path):
    s = SqliteWitnessState(tmp_path / "witness.db")
    yield s
    s.close()


def test_client_follows_a_growing_log_and_refuses_nothing_genuine(device, state):
    """Each checkpoint of a growing log comes back with a cosignature valid under the vkey."""
    witness = make_witness(state, device)
    with serve_witness(witness) as url:
        client = WitnessClient(url, str(witness.vkey), timeout_s=5)
        for step in (1, 2, 5, 13):
            cp = device.grow(step)
            cosig = client.add_checkpoint(cp, device.log.consistency_proof)
            assert cosig.verify(cp.split(b"\n\n")[0] + b"\n", witness.vkey)
            assert client.known_size == device.log.size
    assert state.get(device.origin) == (21, device.log.root)


def test_client_learns_the_witness_size_from_409(device, state):
    """A client that starts at 0 against a witness that holds 6 retries once from 6."""
    witness = make_witness(state, device)
    with serve_witness(witness) as url:
        first = WitnessClient(url, witness.vkey, timeout_s=5)
        first.add_checkpoint(device.grow(6), device.log.consistency_proof)
        fresh = WitnessClient(url, witness.vkey, timeout_s=5)  # e.g. after losing its memo
        asked: list[int] = []

        def proof(old):
            asked.append(old)
            return device.log.consistency_proof(old)

        fresh.add_checkpoint(device.grow(4), proof)
        assert asked == [0, 6]
        assert fresh.known_size == 10


def test_a_rewritten_history_is_refused_over_http(device, state, tmp_path):
    """The same device key signing a fork (at size 4 of a witnessed 7) gets 422, then 409."""
    witness = make_witness(state, device)
    device.grow(7)
    with serve_witness(witness) as url:
        client = WitnessClient(url, witness.vkey, timeout_s=5)
        client.add_checkpoint(device.log.checkpoint(), device.log.consistency_proof)
        fork = DeviceLogBench(tmp_path / "fork", key=device.key)
        for _, data in list(device.log.entries())[:4]:
            fork.log.append(json.loads(data))
        cp = fork.grow(5, tag="rewritten")  # 9 entries, consistent with nothing witnessed
        forger = WitnessClient(url, witness.vkey, timeout_s=5)
        forger.known_size = 7
        with pytest.raises(ProofRejected):
            forger.add_checkpoint(cp, fork.log.consistency_proof)
        small = fork.log.checkpoint()
        fork.close()
        # A rolled-back log (only the 4 shared entries) learns the witness holds more.
        rolled = DeviceLogBench(tmp_path / "rolled", key=device.key)
        for _, data in list(device.log.entries())[:4]:
            rolled.log.append(json.loads(data))
        with pytest.raises(OldSizeConflict) as exc:
            WitnessClient(url, witness.vkey, timeout_s=5).add_checkpoint(
                rolled.log.checkpoint(), rolled.log.consistency_proof)
        assert exc.value.witness_size == 7
        rolled.close()
        assert small  # the fork's checkpoint never became the witness's state
    assert state.get(device.origin) == (7, device.log.root)


def test_unknown_origin_and_unreachable_witness_are_named(device, state, tmp_path):
    """404 is UnknownOrigin; a closed port is WitnessUnavailable, within the timeout."""
    stranger = DeviceLogBench(tmp_path / "stranger", device_id="BC-7777")
    witness = make_witness(state, device)
    with serve_witness(witness) as url, pytest.raises(UnknownOrigin):
        WitnessClient(url, witness.vkey).add_checkpoint(stranger.grow(1), lambda old: [])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(WitnessUnavailable):
        WitnessClient(f"http://127.0.0.1:{port}/w", witness.vkey, timeout_s=2).add_checkpoint(
            device.grow(1), device.log.consistency_proof)
    assert time.monotonic() - t0 < 3
    stranger.close()


def test_pool_collects_cosignatures_from_every_witness_without_blocking(device, tmp_path):
    """Two witnesses, one down at first: submit returns at once, the pool catches up later."""
    states = [SqliteWitnessState(tmp_path / f"w{i}.db") for i in range(2)]
    witnesses = [make_witness(s, device, name=f"witness.test/w{i}") for i, s in enumerate(states)]
    store = tmp_path / "cosignatures"
    with serve_witness(witnesses[0]) as url0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port1 = s.getsockname()[1]
        clients = [WitnessClient(url0, witnesses[0].vkey, timeout_s=2),
                   WitnessClient(f"http://127.0.0.1:{port1}/w", witnesses[1].vkey, timeout_s=2)]
        pool = WitnessPool(clients, directory=store, proof=device.log.consistency_proof,
                           backoff_s=0.05, max_backoff_s=0.2)
        pool.start()
        try:
            for _ in range(5):
                t0 = time.monotonic()
                pool.submit(device.grow(2))
                assert time.monotonic() - t0 < 0.05  # the recorder never waits
            assert not pool.wait_cosigned(10, timeout_s=1.0)  # w1 is down
            status = pool.status()
            assert status["witness.test/w0"].cosigned_size == 10
            assert status["witness.test/w1"].cosigned_size is None
            assert status["witness.test/w1"].failures >= 1
            assert "WitnessUnavailable" in (status["witness.test/w1"].last_error or "")
            # w1 comes up on its port: the pool's retries reach it.
            with serve_witness(witnesses[1], port=port1):
                assert pool.wait_cosigned(10, timeout_s=10)
        finally:
            pool.close()
    notes = sorted(store.iterdir())
    assert len(notes) == 2
    for note, w in zip(notes, witnesses, strict=True):
        found = verified_cosignatures(note.read_bytes(), [w.vkey])
        assert set(found) == {w.vkey.name}
    # A restarted pool reads the kept cosignatures: its clients know the witnesses' sizes.
    again = WitnessPool([WitnessClient("http://127.0.0.1:1/w", w.vkey) for w in witnesses],
                        directory=store, proof=device.log.consistency_proof)
    assert {n: s.cosigned_size for n, s in again.status().items()} == \
        {"witness.test/w0": 10, "witness.test/w1": 10}
    for s in states:
        s.close()



def test_a_witness_that_forgot_its_state_is_flagged(device, tmp_path):
    """A witness whose database was lost (409 naming 0 after cosigning 6) still cosigns, but the
    client records the rollback for the auditor."""
    seed = bytes(range(1, 33))
    lost = SqliteWitnessState(tmp_path / "lost.db")
    with serve_witness(make_witness(lost, device, seed=seed)) as url:
        client = WitnessClient(url, make_witness(lost, device, seed=seed).vkey, timeout_s=5)
        client.add_checkpoint(device.grow(6), device.log.consistency_proof)
        assert client.rollback is None
    lost.close()
    fresh = SqliteWitnessState(tmp_path / "fresh.db")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    with serve_witness(make_witness(fresh, device, seed=seed), port=port):  # same address
        client.add_checkpoint(device.grow(3), device.log.consistency_proof)
    assert client.rollback is not None and "lost or rolled back" in client.rollback
    fresh.close()
