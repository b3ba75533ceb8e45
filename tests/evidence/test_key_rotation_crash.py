"""A key rotation cut short by a crash at any step leaves a device whose key and log agree.

The rotation writes the successor key aside, announces it in the log (signed by the old key),
then installs it. Each test stops the sequence at one step -- the files exactly as a crash
there leaves them -- starts the device the way the agent does (``provision.device_key``), records
again, and hands the folder to ``bodycam verify``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from evbench import AgencyKey, open_store, write_recording

from agent.evidence.canonical import parse_canonical
from agent.evidence.checkpoint import parse_signed_checkpoint
from agent.evidence.key_rotation import rotation_entry
from agent.evidence.keys import PUB_NAME, DeviceKey, next_key_path
from agent.evidence.log import replay_entries
from agent.evidence.verify_cli import verify_main
from agent.provision import device_key

UTC = "2026-11-27T10:05:00.000000Z"


def _key_path(data_dir: Path) -> Path:
    return data_dir / "keys" / "device.key"


def _restart_record_verify(data_dir: Path, agency: AgencyKey,
                           capsys: pytest.CaptureFixture[str]) -> DeviceKey:
    """Start as the agent does, record one more recording, verify the whole folder."""
    key = device_key(data_dir, simulated=False)
    assert DeviceKey.load(_key_path(data_dir)).public_bytes == key.public_bytes
    store = open_store(data_dir, agency)
    write_recording(store, segments=1)
    store.close()
    capsys.readouterr()
    assert verify_main([str(data_dir)]) == 0, capsys.readouterr().out
    assert not next_key_path(_key_path(data_dir)).exists()
    assert (data_dir / "keys" / PUB_NAME).read_bytes() == key.public_pem
    return key


def test_a_crash_before_the_announcement_keeps_the_old_key(
        data_dir: Path, agency: AgencyKey, capsys: pytest.CaptureFixture[str]) -> None:
    """The successor was written aside but never announced: it is discarded, not installed."""
    old = DeviceKey.load(_key_path(data_dir))
    store = open_store(data_dir, agency)
    write_recording(store, segments=1)
    store.close()
    DeviceKey.prepare_next(_key_path(data_dir))  # crash here
    assert _restart_record_verify(data_dir, agency, capsys).public_bytes == old.public_bytes
    assert not (data_dir / "keys" / "retired").exists()


@pytest.mark.parametrize("checkpointed", [True, False], ids=["covered", "entry-only"])
def test_a_crash_after_the_announcement_installs_the_announced_key(
        checkpointed: bool, data_dir: Path, agency: AgencyKey,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The log announced the successor (its checkpoint written, or -- a crash between the two
    -- not yet): the successor becomes the key, the announcement ends up under a checkpoint
    the old key signed, and everything before and after verifies."""
    old = DeviceKey.load(_key_path(data_dir))
    store = open_store(data_dir, agency)
    write_recording(store, segments=1)
    new, rotation = DeviceKey.prepare_next(_key_path(data_dir))
    at = store.log.append(rotation_entry(rotation, utc=UTC), checkpoint=checkpointed).index
    store.log.close()  # a crash here: no clean close flushes anything; device.key is the old key
    assert DeviceKey.load(_key_path(data_dir)).public_bytes == old.public_bytes

    assert device_key(data_dir, simulated=False).public_bytes == new.public_bytes
    signed = parse_signed_checkpoint((data_dir / "log" / "checkpoint").read_bytes())
    signed.verify([old.public_bytes])  # the old key vouches for the announcement...
    assert signed.checkpoint.size > at  # ...which its checkpoint covers
    got = _restart_record_verify(data_dir, agency, capsys)
    assert got.public_bytes == new.public_bytes
    retired = list((data_dir / "keys" / "retired").glob(f"*_{old.fingerprint_short}.pub"))
    assert len(retired) == 1
    entries = [parse_canonical(r) for _, r in _entries(data_dir)]
    assert [e["type"] for e in entries if e.get("type") == "key_rotation"] == ["key_rotation"]
    assert base64.b64decode(entries[at]["new_key"]) == new.public_bytes


@pytest.mark.parametrize("checkpointed", [True, False], ids=["covered", "entry-only"])
def test_the_folder_a_crash_after_the_announcement_leaves_verifies(
        checkpointed: bool, data_dir: Path, agency: AgencyKey,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Copied off as the crash left it, and again after the start that finishes the rotation
    (before anything more is logged): the log ends at the rotation entry under a checkpoint
    the old key signed -- the old key's last checkpoint, which verify accepts (exit 0). The
    entry-only copy's rotation is past its checkpoint: not followed, and said so."""
    old = DeviceKey.load(_key_path(data_dir))
    store = open_store(data_dir, agency)
    write_recording(store, segments=1)
    store.close()  # settled: the segment's checkpoint is on disk
    store = open_store(data_dir, agency)
    _, rotation = DeviceKey.prepare_next(_key_path(data_dir))
    at = store.log.append(rotation_entry(rotation, utc=UTC), checkpoint=checkpointed).index
    store.log.close()
    pending = next_key_path(_key_path(data_dir))
    aside = pending.with_name("successor.key")
    pending.rename(aside)  # the private successor is not part of a copy handed to a verifier
    capsys.readouterr()
    assert verify_main([str(data_dir), "--pubkey", old.public_b64, "--json"]) == 0
    codes = [(f["code"], f["where"]) for f in json.loads(capsys.readouterr().out)["findings"]]
    followed = ("key_rotation", f"log entry {at}") in codes
    unsigned = ("key_rotation_unsigned", f"log entry {at}") in codes
    assert (followed, unsigned) == (checkpointed, not checkpointed)

    aside.rename(pending)
    new = device_key(data_dir, simulated=False)
    open_store(data_dir, agency).close()  # the agent starts with the new key, logs nothing
    signed = parse_signed_checkpoint((data_dir / "log" / "checkpoint").read_bytes())
    assert signed.checkpoint.size == at + 1
    assert signed.verify([old.public_bytes, new.public_bytes]) == old.public_bytes
    for keys in ([old.public_b64], [old.public_b64, new.public_b64], []):
        args = [a for k in keys for a in ("--pubkey", k)]
        assert verify_main([str(data_dir), *args]) == 0, capsys.readouterr().out


def test_a_stale_public_key_file_is_rewritten(
        data_dir: Path, agency: AgencyKey, capsys: pytest.CaptureFixture[str]) -> None:
    """A crash after the key file's rename but before device.pub: device.pub is made to match."""
    old = DeviceKey.load(_key_path(data_dir))
    store = open_store(data_dir, agency)
    write_recording(store, segments=1)
    store.rotate_key()
    store.close()
    (data_dir / "keys" / PUB_NAME).write_bytes(old.public_pem)  # as the crash left it
    assert _restart_record_verify(data_dir, agency, capsys).public_bytes != old.public_bytes


def test_a_failed_announcement_leaves_no_successor(data_dir: Path, agency: AgencyKey) -> None:
    """An append that fails (a full disk) must not leave a successor a later start installs."""
    old = DeviceKey.load(_key_path(data_dir))
    store = open_store(data_dir, agency)
    write_recording(store, segments=1)

    def refuse(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    store.log.append = refuse  # type: ignore[method-assign]
    with pytest.raises(OSError):
        store.rotate_key()
    store.close()
    assert not next_key_path(_key_path(data_dir)).exists()
    assert DeviceKey.load(_key_path(data_dir)).public_bytes == old.public_bytes
    assert all(parse_canonical(r).get("type") != "key_rotation" for _, r in _entries(data_dir))


def _entries(data_dir: Path) -> list[tuple[int, bytes]]:
    return list(enumerate(replay_entries((data_dir / "log" / "entries.bin").read_bytes()).records))


def _full_disk_once(monkeypatch: pytest.MonkeyPatch, module: str, name: str) -> None:
    """The next write through ``module``'s ``atomic_write`` whose file is ``name`` fails with
    ENOSPC, as on a full card; later ones succeed."""
    import importlib
    mod = importlib.import_module(module)
    real, failed = mod.atomic_write, []

    def write(path: Path, *a: object, **k: object) -> None:
        if Path(path).name.startswith(name) and not failed:
            failed.append(path)
            raise OSError(28, "No space left on device")
        real(path, *a, **k)

    monkeypatch.setattr(mod, "atomic_write", write)


@pytest.mark.parametrize("install_fails", [False, True], ids=["installed", "install-failed"])
def test_a_full_disk_after_the_announcement_completes_the_rotation(
        data_dir: Path, agency: AgencyKey, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, install_fails: bool) -> None:
    """The entry landed but its checkpoint could not be written (and, in one case, the key
    files could not be installed either): the rotation has happened, so from here on only the
    successor signs -- a later manifest or checkpoint by the retired key would fail verify --
    and a restart finds key and log agreeing."""
    old = DeviceKey.load(_key_path(data_dir))
    store = open_store(data_dir, agency)
    write_recording(store, segments=1)
    _full_disk_once(monkeypatch, "agent.evidence.log", "checkpoint")
    if install_fails:
        _full_disk_once(monkeypatch, "agent.evidence.keys", "2")  # keys/retired/<stamp>_…pub
    new = store.rotate_key()
    assert new.public_bytes != old.public_bytes
    assert next_key_path(_key_path(data_dir)).exists() == install_fails
    write_recording(store, segments=1)  # signed by the successor
    behind = (data_dir / "log" / "checkpoint").read_bytes()
    write_recording(store, segments=1)
    store.close()
    cp = parse_signed_checkpoint((data_dir / "log" / "checkpoint").read_bytes())
    assert cp.verify([new.public_bytes]) == new.public_bytes
    if install_fails:  # and the last checkpoint lost (entries appended with checkpoints deferred)
        (data_dir / "log" / "checkpoint").write_bytes(behind)
        device_key(data_dir, simulated=False)  # a start completes the install, re-signs nothing
        assert parse_signed_checkpoint((data_dir / "log" / "checkpoint").read_bytes()).verify(
            [old.public_bytes, new.public_bytes]) == new.public_bytes
    assert _restart_record_verify(data_dir, agency, capsys).public_bytes == new.public_bytes


def test_no_reader_sees_the_old_keys_checkpoint_as_the_newest_after_a_rotation(
        data_dir: Path, agency: AgencyKey, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader of the log's checkpoint (the uploader proving the rotation's position to the
    station, which needs the new key's signature) that comes while the old key's checkpoint
    over the rotation is being written gets the successor's: the switch happens under the
    log's lock, not after the key files are installed."""
    import threading

    import agent.evidence.log as log_module

    store = open_store(data_dir, agency)
    write_recording(store, segments=1)
    old = DeviceKey.load(_key_path(data_dir))
    real, seen, readers = log_module.atomic_write, [], []

    def write(path: Path, *a: object, **k: object) -> None:
        real(path, *a, **k)
        if Path(path).name == "checkpoint" and not readers:  # the old key's, over the entry
            reader = threading.Thread(target=lambda: seen.append(store.log.checkpoint()))
            readers.append(reader)
            reader.start()

    monkeypatch.setattr(log_module, "atomic_write", write)
    new = store.rotate_key()
    readers[0].join(10)
    store.close()
    signer = parse_signed_checkpoint(seen[0]).verify([old.public_bytes, new.public_bytes])
    assert signer == new.public_bytes
