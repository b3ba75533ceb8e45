"""The checkpoint monitor's rule as instant tests: what a signed checkpoint published over MQTT
does to the held checkpoint (hold, nothing, fork, behind, wait, gap), and which messages are
malformed before anything is trusted."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from agent.evidence.checkpoint import parse_signed_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.log import EvidenceLog, origin_for
from agent.station.index import CheckpointRow
from agent.station.monitor import Proof, judge, parse_message

DEVICE = "BC-RULE-1"


@pytest.fixture
def logs(tmp_path: Path):
    """A device log and a twin signed by the same key that diverges after two entries."""
    key = DeviceKey.generate(tmp_path / "keys" / "device.key")
    real = EvidenceLog(tmp_path / "real", key, origin_for(DEVICE))
    twin = EvidenceLog(tmp_path / "twin", key, origin_for(DEVICE))
    for i in range(2):
        real.append({"kind": "event", "n": i})
        twin.append({"kind": "event", "n": i})
    yield real, twin
    real.close()
    twin.close()


def held_of(log: EvidenceLog) -> CheckpointRow:
    return CheckpointRow(log.size, base64.b64encode(log.root).decode(), log.checkpoint().decode())


def signed(log: EvidenceLog):
    return parse_signed_checkpoint(log.checkpoint())


def proof(log: EvidenceLog, old: int) -> Proof:
    return Proof(old, log.size, tuple(log.consistency_proof(old)))


def test_nothing_held_is_held_and_a_redelivery_changes_nothing(logs) -> None:
    real, _ = logs
    assert judge(None, signed(real), None).action == "hold"
    assert judge(held_of(real), signed(real), None).action == "same"


def test_an_extension_proven_from_the_held_size_is_held(logs) -> None:
    real, _ = logs
    held = held_of(real)
    real.append({"kind": "event", "n": 9})
    assert judge(held, signed(real), proof(real, held.size)).action == "hold"


def test_a_diverging_history_is_a_fork_at_equal_and_at_larger_size(logs) -> None:
    """Both logs hold two common entries, then differ: at the same size the roots differ;
    at a larger size no proof from the held root can verify."""
    real, twin = logs
    real.append({"kind": "event", "n": "real"})
    twin.append({"kind": "event", "n": "twin"})
    held = held_of(real)
    assert judge(held, signed(twin), proof(twin, 2)).action == "fork"
    twin.append({"kind": "event", "n": "more"})
    assert judge(held, signed(twin), proof(twin, held.size)).action == "fork"


def test_smaller_later_and_unlinked_checkpoints_are_not_alarms(logs) -> None:
    """Smaller: behind (split deliveries arrive late). A proof from above the held size: wait
    for the process holding it. No proof from the held size at all: a gap."""
    real, _ = logs
    small = held_of(real)
    small_signed = signed(real)
    for i in range(3):
        real.append({"kind": "event", "n": f"x{i}"})
    big = held_of(real)
    assert judge(big, small_signed, None).action == "behind"
    assert judge(small, signed(real), proof(real, 4)).action == "wait"
    assert judge(small, signed(real), None).action == "gap"
    assert judge(small, signed(real), proof(real, 1)).action == "gap"


@pytest.mark.parametrize("payload", [
    b"not json", b"[]", b'{"note": 5}', b"x" * 70_000,
    b'{"note": "n", "proof": {"old_size": 3, "new_size": 2, "hashes": []}}',
    b'{"note": "n", "proof": {"old_size": true, "new_size": 2, "hashes": []}}',
    b'{"note": "n", "proof": {"old_size": 1, "new_size": 2, "hashes": ["%%%"]}}',
    b'{"note": "n", "proof": {"old_size": 1, "new_size": 2, "hashes": ["AAAA"]}}',
    b'{"note": "n", "proof": "yes"}',
], ids=["text", "array", "note-type", "huge", "sizes", "bool", "base64", "hash-len", "proof"])
def test_malformed_messages_are_refused_before_anything_is_trusted(payload: bytes) -> None:
    with pytest.raises(ValueError):
        parse_message(payload)


def test_a_device_message_parses(logs) -> None:
    real, _ = logs
    old = real.size
    real.append({"kind": "event", "n": "y"})
    body = json.dumps({"device_id": DEVICE, "seq": 1, "note": real.checkpoint().decode(),
                       "proof": {"old_size": old, "new_size": real.size, "hashes": [
                           base64.b64encode(h).decode() for h in real.consistency_proof(old)]}})
    note, p = parse_message(body.encode())
    assert note == real.checkpoint() and p == proof(real, old)
