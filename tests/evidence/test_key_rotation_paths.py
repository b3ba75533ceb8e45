"""The two ways to rotate the device key -- the running agent's store and ``bodycam keys init
--rotate`` on a stopped device -- leave one and the same log entry (the fields logs already on
devices hold, plus the old key's endorsement of the new), and a log ``bodycam verify`` accepts
with the old key alone."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from evbench import AgencyKey, open_store, write_recording

from agent.evidence.canonical import canonical_json, parse_canonical
from agent.evidence.keys import DeviceKey, endorsement_valid, fingerprint
from agent.evidence.keys_cli import keys_init_main
from agent.evidence.verify_cli import verify_main

# The rotation entry: the fields every key_rotation entry on a device already has, plus the
# old key's endorsement of the new one, in their canonical order.
FIELDS = ["endorsement", "kind", "new_fingerprint", "new_key", "old_fingerprint", "type", "utc"]


def _rotation_entry(data_dir: Path, agency: AgencyKey) -> tuple[bytes, int]:
    """The raw bytes of the log's key_rotation entry and the log's size."""
    store = open_store(data_dir, agency)
    try:
        raw = [e for _, e in store.log.entries()]
        [entry] = [e for e in raw if parse_canonical(e).get("type") == "key_rotation"]
        write_recording(store, segments=1)  # signed with the new key after the rotation
        return entry, len(raw)
    finally:
        store.close()


@pytest.mark.parametrize("path", ["store", "cli"])
def test_either_rotation_path_logs_the_one_entry_format_and_verifies(
        path: str, data_dir: Path, agency: AgencyKey, capsys: pytest.CaptureFixture[str]) -> None:
    """Same fields, same order, the bytes the pre-existing format gives; old and new segments
    verify with the folder's keys and with both keys given explicitly."""
    old = DeviceKey.load(data_dir / "keys" / "device.key")
    store = open_store(data_dir, agency)
    write_recording(store, segments=1)
    if path == "store":
        store.rotate_key()
        store.close()
    else:
        store.close()
        assert keys_init_main(["--data-dir", str(data_dir), "--rotate"]) == 0
    new = DeviceKey.load(data_dir / "keys" / "device.key")
    assert new.public_bytes != old.public_bytes

    data, size = _rotation_entry(data_dir, agency)
    assert size == 2  # one segment, then the rotation
    assert list(json.loads(data)) == FIELDS
    entry = parse_canonical(data)
    assert entry["old_fingerprint"] == old.fingerprint
    assert entry["new_fingerprint"] == fingerprint(new.public_bytes) == new.fingerprint
    assert base64.b64decode(entry["new_key"]) == new.public_bytes
    legacy = {"kind": "event", "type": "key_rotation", "utc": entry["utc"],
              "old_fingerprint": old.fingerprint, "new_fingerprint": new.fingerprint,
              "new_key": new.public_b64, "endorsement": entry["endorsement"]}
    assert data == canonical_json(legacy)
    assert endorsement_valid(old.public_bytes, new.public_bytes,
                             base64.b64decode(entry["endorsement"]))

    capsys.readouterr()
    assert verify_main([str(data_dir)]) == 0
    assert verify_main([str(data_dir), "--pubkey", old.public_b64,
                        "--pubkey", new.public_b64]) == 0
    assert verify_main([str(data_dir), "--pubkey", new.public_b64]) == 1  # old segment
    # the key registered before the rotation is enough: the log's endorsement introduces the new
    assert verify_main([str(data_dir), "--pubkey", old.public_b64]) == 0


def test_both_rotation_paths_give_entries_of_one_shape(tmp_path: Path, agency: AgencyKey) -> None:
    """Side by side: the agent's and the command line's entries differ only in their values."""
    shapes = []
    for name in ("agent", "cli"):
        data_dir = tmp_path / name
        DeviceKey.generate(data_dir / "keys" / "device.key")
        store = open_store(data_dir, agency)
        write_recording(store, segments=1)
        if name == "agent":
            store.rotate_key()
        store.close()
        if name == "cli":
            assert keys_init_main(["--data-dir", str(data_dir), "--rotate"]) == 0
        data, _ = _rotation_entry(data_dir, agency)
        entry = json.loads(data)
        shapes.append([(k, type(v).__name__, len(v)) for k, v in entry.items()])
    assert shapes[0] == shapes[1]


def test_the_store_knows_its_rotations_from_the_log_it_opened_and_its_own(
        data_dir: Path, agency: AgencyKey) -> None:
    """key_rotations(): the entries found when the log was read at open, then each rotation
    made since -- the exact bytes in the log, which a checkpoint message carries."""
    store = open_store(data_dir, agency)
    write_recording(store, segments=1)
    assert store.key_rotations() == []
    store.rotate_key()
    first = store.key_rotations()
    store.close()
    store = open_store(data_dir, agency)
    assert store.key_rotations() == first
    store.rotate_key()
    entries = store.key_rotations()
    raw = [e for _, e in store.log.entries() if parse_canonical(e).get("type") == "key_rotation"]
    assert len(entries) == 2 and entries == raw
    store.close()
