"""The witness rule on real device logs: cosign only what extends the last cosigned tree.

Each refusal is the status C2SP tlog-witness names; the state is SQLite (and the in-memory
store, which must behave the same), and it survives a restart.
"""

from __future__ import annotations

import base64
import multiprocessing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from witnessbench import DeviceLogBench, make_witness, race_worker

from agent.evidence.checkpoint import Checkpoint, SignedCheckpoint, parse_signed_checkpoint, sign_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.merkle import EMPTY_ROOT
from agent.witness import (
    MemoryWitnessState,
    SqliteWitnessState,
    Witness,
    verified_cosignatures,
)
from agent.witness.cosignature import add_cosignatures
from agent.witness.protocol import encode_request, parse_cosignatures

REFUSALS = {400, 403, 404, 409, 422}


@pytest.fixture(params=["sqlite", "memory"])
def state(request, tmp_path):
    if request.param == "memory":
        yield MemoryWitnessState()
    else:
        s = SqliteWitnessState(tmp_path / "witness.db")
        yield s
        s.close()


@pytest.fixture
def device(tmp_path):
    d = DeviceLogBench(tmp_path / "dev")
    yield d
    d.close()


def submit(witness: Witness, device: DeviceLogBench, old: int, checkpoint: bytes | None = None,
           proof: list[bytes] | None = None) -> tuple[int, bytes]:
    cp = checkpoint if checkpoint is not None else device.log.checkpoint()
    size = parse_signed_checkpoint(cp).checkpoint.size
    if proof is None:
        proof = device.log.consistency_proof(old, size) if old <= size else []
    status, _ctype, body = witness.handle_add_checkpoint(encode_request(old, proof, cp))
    return status, body


def test_cosigns_a_growing_log_and_each_cosignature_verifies(state, device):
    """First contact from 0, then every extension with its proof: 200 and a valid cosignature."""
    w = make_witness(state, device)
    old = 0
    for step in (1, 4, 3, 8):
        cp = device.grow(step)
        status, body = submit(w, device, old)
        assert status == 200, body
        (cosig,) = parse_cosignatures(body)
        note = add_cosignatures(cp, [cosig])
        assert verified_cosignatures(note, [w.vkey])[w.vkey.name] == cosig
        old = device.log.size
    assert state.get(device.origin) == (16, device.log.root)
    # The same checkpoint again is cosigned again (idempotent, no state change).
    assert submit(w, device, 16)[0] == 200


def test_refuses_a_smaller_tree_after_a_larger_one(state, device):
    """After cosigning 10, size 6 gets 409 with old 6 and 400 with old 10 (old > size)."""
    w = make_witness(state, device)
    small = device.grow(6)
    device.grow(4)
    assert submit(w, device, 0)[0] == 200
    assert submit(w, device, 6, small, []) == (409, b"10\n")
    assert submit(w, device, 10, small, [])[0] == 400
    assert state.get(device.origin) == (10, device.log.root)


def test_wrong_old_size_gets_409_with_the_witness_size(state, device):
    """The client learns the witness's size from the 409 body and can retry from it."""
    w = make_witness(state, device)
    device.grow(5)
    assert submit(w, device, 0)[0] == 200
    device.grow(3)
    assert submit(w, device, 0) == (409, b"5\n")
    assert submit(w, device, 2) == (409, b"5\n")
    assert submit(w, device, 5)[0] == 200


def _fork(tmp_path: Path, device: DeviceLogBench, at: int, extra: int) -> DeviceLogBench:
    """A second log under the same device key sharing the first ``at`` entries, then diverging."""
    fork = DeviceLogBench(tmp_path / "fork", key=device.key)
    for _, data in list(device.log.entries())[:at]:
        import json
        fork.log.append(json.loads(data))
    fork.grow(extra, tag="rewritten")
    return fork


def test_refuses_a_fork_of_the_same_size(state, device, tmp_path):
    """Same size, another root (a rewritten history): 422, and the state is unchanged."""
    w = make_witness(state, device)
    device.grow(6)
    assert submit(w, device, 0)[0] == 200
    fork = _fork(tmp_path, device, 3, 3)
    status, body = submit(w, fork, 6)
    assert status == 422, body
    assert state.get(device.origin) == (6, device.log.root)
    fork.close()


def test_refuses_a_larger_but_inconsistent_tree(state, device, tmp_path):
    """A larger fork with its own (valid for itself) proof from the cosigned size: 422."""
    w = make_witness(state, device)
    device.grow(5)
    assert submit(w, device, 0)[0] == 200
    fork = _fork(tmp_path, device, 4, 7)  # 11 entries; entry 4 differs
    status, _ = submit(w, fork, 5)
    assert status == 422
    # The genuine extension still goes through afterwards.
    device.grow(6)
    assert submit(w, device, 5)[0] == 200
    fork.close()


def test_refuses_bad_signatures_and_unknown_origins(state, device, tmp_path):
    """A tampered signature or a stranger's key: 403; an origin it does not keep: 404."""
    w = make_witness(state, device)
    cp = device.grow(3)
    sig_at = cp.rindex(b" ") + 1
    blob = bytearray(base64.b64decode(cp[sig_at:-1]))
    blob[10] ^= 0x40
    tampered = cp[:sig_at] + base64.b64encode(bytes(blob)) + b"\n"
    assert submit(w, device, 0, tampered)[0] == 403
    stranger = DeviceKey.generate(tmp_path / "stranger" / "device.key")
    forged = sign_checkpoint(parse_signed_checkpoint(cp).checkpoint, stranger)
    assert submit(w, device, 0, forged)[0] == 403
    other = sign_checkpoint(Checkpoint("bodycam/v1/BC-9999", 3, device.log.root), device.key)
    assert submit(w, device, 0, other, [])[0] == 404
    assert state.get(device.origin) is None


def test_refuses_a_nonempty_root_at_size_zero_and_a_proof_from_zero(state, device):
    """Size 0 must carry the empty root; old size 0 takes no proof (both 422)."""
    w = make_witness(state, device)
    bad_empty = sign_checkpoint(Checkpoint(device.origin, 0, b"\x11" * 32), device.key)
    assert submit(w, device, 0, bad_empty, [])[0] == 422
    good_empty = sign_checkpoint(Checkpoint(device.origin, 0, EMPTY_ROOT), device.key)
    assert submit(w, device, 0, good_empty, [])[0] == 200
    cp = device.grow(4)
    assert submit(w, device, 0, cp, [b"\x00" * 32])[0] == 422
    assert submit(w, device, 0, cp)[0] == 200


def test_signed_inconsistencies_reach_the_refusal_hook(device, tmp_path):
    """The station's alarm sees each validly signed fork, with the signed checkpoint."""
    seen: list[tuple[str, int, SignedCheckpoint]] = []
    w = make_witness(MemoryWitnessState(), device,
                     on_refusal=lambda origin, refusal, cp: seen.append((origin, refusal.status, cp)))
    device.grow(4)
    assert submit(w, device, 0)[0] == 200
    fork = _fork(tmp_path, device, 2, 2)
    assert submit(w, fork, 4)[0] == 422
    assert [(o, s, c.checkpoint.root) for o, s, c in seen] == [(device.origin, 422, fork.log.root)]
    fork.close()


def test_state_survives_a_restart(device, tmp_path):
    """A new witness process over the same SQLite file remembers the cosigned head."""
    db = tmp_path / "witness.db"
    s1 = SqliteWitnessState(db)
    device.grow(7)
    assert submit(make_witness(s1, device), device, 0)[0] == 200
    s1.close()
    s2 = SqliteWitnessState(db)
    w2 = make_witness(s2, device)
    assert submit(w2, device, 0) == (409, b"7\n")
    device.grow(2)
    assert submit(w2, device, 7)[0] == 200
    assert s2.get(device.origin) == (9, device.log.root)
    s2.close()


def test_a_lost_compare_and_set_is_a_409_not_a_second_cosignature(device):
    """If another request advances the log between the check and the write, this one loses."""
    inner = MemoryWitnessState()
    device.grow(3)
    cp3 = device.log.checkpoint()
    device.grow(2)
    cp5 = device.log.checkpoint()

    class Interleaved:
        """Real state; the first read lets a competing request complete first."""

        def __init__(self) -> None:
            self.fired = False

        def get(self, origin):
            head = inner.get(origin)
            if not self.fired:
                self.fired = True
                other = make_witness(inner, device)
                assert submit(other, device, 0, cp5)[0] == 200
            return head

        def compare_and_set(self, origin, expected, new):
            return inner.compare_and_set(origin, expected, new)

    w = make_witness(Interleaved(), device)
    assert submit(w, device, 0, cp3, []) == (409, b"5\n")
    assert inner.get(device.origin) == (5, device.log.root)


def test_two_processes_racing_conflicting_checkpoints_exactly_one_wins(tmp_path):
    """Two processes over one SQLite file, each pushing its own fork of 20 logs: one per log wins."""
    key = DeviceKey.generate(tmp_path / "k" / "device.key")
    origins = [f"bodycam/v1/RACE-{i:02d}" for i in range(20)]
    jobs = {side: [(o, encode_request(0, [], sign_checkpoint(
        Checkpoint(o, 3, bytes([side, i]) * 16), key))) for i, o in enumerate(origins)]
        for side in (1, 2)}
    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    db = str(tmp_path / "witness.db")
    SqliteWitnessState(Path(db)).close()  # schema and WAL mode before the race
    seed = bytes(32)
    procs = [ctx.Process(target=race_worker,
                         args=(s, db, dict.fromkeys(origins, key.public_bytes), seed, jobs[s], barrier, out))
             for s in (1, 2)]
    for p in procs:
        p.start()
    results = dict(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    state = SqliteWitnessState(Path(db))
    for i, origin in enumerate(origins):
        statuses = sorted(r[i][1] for r in results.values())
        assert statuses == [200, 409], (origin, statuses)
        winner = 1 if results[1][i][1] == 200 else 2
        assert results[3 - winner][i][2] == b"3\n"  # the loser is told the winner's size
        assert state.get(origin) == (3, bytes([winner, i]) * 16)
    state.close()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_fuzz_arbitrary_bodies_get_4xx_never_an_exception(device, body):
    """Whatever bytes arrive, the answer is a 4xx (never 200, never a traceback)."""
    w = _fuzz_witness(device)
    status, ctype, reply = w.handle_add_checkpoint(body)
    assert status in REFUSALS and isinstance(reply, bytes) and ctype


_FUZZ: dict[str, Witness] = {}


def _fuzz_witness(device: DeviceLogBench) -> Witness:
    key = device.origin + device.key.fingerprint
    if key not in _FUZZ:
        _FUZZ.clear()
        if device.log.size == 0:
            device.grow(5)
        _FUZZ[key] = make_witness(MemoryWitnessState(), device)
    return _FUZZ[key]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_mutated_requests_never_move_the_witness_off_the_log(device, data):
    """Byte mutations of a genuine request: 4xx, or 200 only for the genuine checkpoint."""
    w = _fuzz_witness(device)
    genuine = encode_request(0, [], device.log.checkpoint())
    body = bytearray(genuine)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        at = data.draw(st.integers(0, len(body) - 1))
        if op == "flip":
            body[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "insert":
            body[at:at] = data.draw(st.binary(min_size=1, max_size=3))
        else:
            del body[at]
    state = w._state
    status, _, _ = w.handle_add_checkpoint(bytes(body))
    assert status in REFUSALS | {200}
    head = state.get(device.origin)
    assert head is None or head == (5, device.log.root)


def test_a_failing_refusal_hook_does_not_change_the_answer(device, tmp_path):
    """The alarm raising is logged; the fork still gets its 422 and the state stays put."""
    def broken(origin, refusal, cp):
        raise RuntimeError("alarm channel down")

    w = make_witness(MemoryWitnessState(), device, on_refusal=broken)
    device.grow(4)
    assert submit(w, device, 0)[0] == 200
    fork = _fork(tmp_path, device, 1, 3)
    assert submit(w, fork, 4)[0] == 422
    fork.close()
