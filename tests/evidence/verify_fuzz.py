"""A mutation fuzzer for ``bodycam verify`` over a real recorded data directory.

Each case copies a sealed data directory and applies one to three mutations chosen by a seed:
bit flips, truncations, appended junk, deletions, files swapped, a file replaced by a
symlink, FIFO or folder, a recording folder duplicated, JSON values replaced by values of
other types — and, to reach the code behind the signatures, the same JSON mutations re-signed
with the device key (a leaked key). Invariants checked for every case:

1. verify returns (no exception, no hang) and its report renders as text and JSON;
2. if evidence bytes were changed without the device key, the report is not intact.

Used by tests/evidence/test_verify_fuzz.py (a bounded run plus the kept corpus) and by
``scripts/fuzz_verify.py`` for long runs.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import threading
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.evidence.canonical import canonical_json
from agent.evidence.checkpoint import Checkpoint, sign_checkpoint
from agent.evidence.keys import DeviceKey
from agent.evidence.log import origin_for, replay_entries
from agent.evidence.manifest import parse_envelope, sign_manifest
from agent.evidence.merkle import leaf_hash, root_of
from agent.evidence.report import Report
from agent.evidence.verify import verify
from hw.errors import LogCorrupt

DEVICE = "BC-0001"
_JUNK: list[Any] = [None, True, -1, 0, 2**70, "", "x" * 300, "../../etc/passwd", [], {},
                    [[[[]]]], {"a": {"b": []}}, "2026-13-45T99:99:99.000000Z", "ff" * 32]


@dataclass
class Case:
    """What one fuzz case did, and whether it changed evidence without the device key."""

    seed: int
    ops: list[str] = field(default_factory=list)
    tampered: bool = False  # evidence bytes changed without re-signing

    def note(self, op: str, *, tampered: bool) -> None:
        self.ops.append(op)
        self.tampered |= tampered


def evidence_files(root: Path) -> list[Path]:
    """Files whose change without the device key must be caught."""
    rec = sorted(p for p in (root / "recordings").glob("*/*") if p.is_file())
    return [*rec, root / "log" / "entries.bin", root / "log" / "checkpoint"]


def mutate(root: Path, seed: int, key: DeviceKey) -> Case:
    """Apply one to three seeded mutations to the data directory ``root``."""
    rnd = random.Random(seed)
    case = Case(seed)
    for _ in range(rnd.randint(1, 3)):
        files = [p for p in evidence_files(root) if p.is_file() and not p.is_symlink()]
        if not files:
            break
        target = rnd.choice(files)
        op = rnd.choice(_OPS)
        try:
            op(root, target, rnd, key, case)
        except OSError as exc:  # an earlier mutation made this one impossible: skip it
            case.ops.append(f"skipped {op.__name__}: {exc.strerror}")
    return case


def _rel(root: Path, p: Path) -> str:
    return p.relative_to(root).as_posix()


def _flip(root: Path, p: Path, rnd: random.Random, _k: DeviceKey, case: Case) -> None:
    data = bytearray(p.read_bytes())
    if not data:
        return
    i = rnd.randrange(len(data))
    data[i] ^= 1 << rnd.randrange(8)
    p.write_bytes(bytes(data))
    case.note(f"flip {_rel(root, p)}@{i}", tampered=True)


def _truncate(root: Path, p: Path, rnd: random.Random, _k: DeviceKey, case: Case) -> None:
    size = p.stat().st_size
    if size == 0:
        return
    n = rnd.randrange(size)
    with open(p, "r+b") as f:
        f.truncate(n)
    case.note(f"truncate {_rel(root, p)} to {n}", tampered=True)


def _append(root: Path, p: Path, rnd: random.Random, _k: DeviceKey, case: Case) -> None:
    with open(p, "ab") as f:
        f.write(rnd.randbytes(rnd.randint(1, 300)))
    # Junk after the log's last record is a torn tail: what a crash leaves, rightly a warning.
    case.note(f"append {_rel(root, p)}", tampered=p.name != "entries.bin")


def _delete(root: Path, p: Path, _r: random.Random, _k: DeviceKey, case: Case) -> None:
    p.unlink()
    case.note(f"delete {_rel(root, p)}", tampered=True)


def _swap(root: Path, p: Path, rnd: random.Random, _k: DeviceKey, case: Case) -> None:
    others = [q for q in evidence_files(root) if q.is_file() and q != p
              and q.read_bytes() != p.read_bytes()]
    if not others:
        return
    q = rnd.choice(others)
    a, b = p.read_bytes(), q.read_bytes()
    p.write_bytes(b)
    q.write_bytes(a)
    case.note(f"swap {_rel(root, p)} {_rel(root, q)}", tampered=True)


def _special(root: Path, p: Path, rnd: random.Random, _k: DeviceKey, case: Case) -> None:
    keep = root.parent / f"{root.name}-moved-{rnd.randrange(10**9)}"
    shutil.move(p, keep)
    kind = rnd.choice(["symlink", "fifo", "dir"])
    if kind == "symlink":
        p.symlink_to(keep)
    elif kind == "fifo":
        os.mkfifo(p)
    else:
        p.mkdir()
    case.note(f"{kind} {_rel(root, p)}", tampered=True)


def _shadow(root: Path, p: Path, rnd: random.Random, _k: DeviceKey, case: Case) -> None:
    folder = p.parent if p.parent.parent.name == "recordings" else None
    if folder is None:
        return
    name = rnd.choice(["zzzz", folder.name.replace(folder.name[:8], "20991231"), "a" + folder.name])
    if not (folder.parent / name).exists():
        shutil.copytree(folder, folder.parent / name)
        case.note(f"shadow {_rel(root, folder)} as {name}", tampered=False)


def _junk_json(value: Any, rnd: random.Random) -> Any:
    """Replace or delete one random leaf of a JSON document."""
    if isinstance(value, dict) and value:
        k = rnd.choice(sorted(value))
        if rnd.random() < 0.2:
            return {kk: v for kk, v in value.items() if kk != k}
        return {**value, k: _junk_json(value[k], rnd)}
    if isinstance(value, list) and value:
        i = rnd.randrange(len(value))
        return [*value[:i], _junk_json(value[i], rnd), *value[i + 1:]]
    return rnd.choice(_JUNK)


def _json_manifest(root: Path, p: Path, rnd: random.Random, key: DeviceKey, case: Case) -> None:
    if not p.name.endswith(".manifest.json"):
        _flip(root, p, rnd, key, case)
        return
    try:
        env = json.loads(p.read_bytes())
        assert isinstance(env, dict)
    except (ValueError, AssertionError):  # an earlier mutation broke it: mutate the bytes
        _flip(root, p, rnd, key, case)
        return
    before = canonical_json(env.get("manifest"))
    body = _junk_json(env.get("manifest"), rnd)
    if rnd.random() < 0.5 and isinstance(body, dict):
        p.write_bytes(sign_manifest(body, key).envelope())
        case.note(f"json resigned {_rel(root, p)}", tampered=False)
        return
    env["manifest"] = body
    p.write_bytes(json.dumps(env).encode())
    case.note(f"json {_rel(root, p)}", tampered=canonical_json(body) != before)


def _json_log(root: Path, p: Path, rnd: random.Random, key: DeviceKey, case: Case) -> None:
    log = root / "log" / "entries.bin"
    if not log.is_file():
        return
    try:
        records = replay_entries(log.read_bytes()).records
        i = rnd.randrange(len(records)) if records else -1
        entry = json.loads(records[i]) if records else None
    except (LogCorrupt, ValueError):
        return
    if not records:
        return
    mutated = _junk_json(entry, rnd)
    try:
        records[i] = canonical_json(mutated)
    except TypeError:
        return
    log.write_bytes(b"".join(struct.pack(">II", len(r), zlib.crc32(r)) + r for r in records))
    resign = rnd.random() < 0.5
    if resign:
        cp = Checkpoint(origin_for(DEVICE), len(records), root_of([leaf_hash(r)
                                                                    for r in records]))
        (root / "log" / "checkpoint").write_bytes(sign_checkpoint(cp, key))
    case.note(f"log entry {i} {'resigned' if resign else ''}",
              tampered=not resign and mutated != entry)


_OPS = [_flip, _truncate, _append, _delete, _swap, _special, _shadow, _json_manifest,
        _json_manifest, _json_log, _json_log]


def run_case(base: Path, work: Path, seed: int, key: DeviceKey, pubkeys: list[bytes],
             *, deadline_s: float = 30.0) -> tuple[Case, Report]:
    """Copy ``base`` to ``work``, mutate it, verify it; AssertionError on a broken invariant."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(base, work, symlinks=True)
    case = mutate(work, seed, key)
    out: list[Report] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            out.append(verify(work, pubkeys=pubkeys))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(deadline_s)
    assert not t.is_alive(), f"verify hung on case {case}"
    if errors:
        raise AssertionError(f"verify raised {errors[0]!r} on case {case}") from errors[0]
    report = out[0]
    report.render()
    json.dumps(report.to_json())
    if case.tampered:
        assert not report.ok, f"tampering not caught: {case}\n{report.render()}"
    return case, report


def make_base(root: Path, store_factory: Any, write_recording: Any) -> DeviceKey:
    """A deterministic small data directory: two recordings, an event, closed."""
    DeviceKey.generate(root / "keys" / "device.key")
    store = store_factory(root)
    store.log_event("boot", boot_id="b0" * 16)
    for r in range(2):
        rnd = random.Random(r)
        write_recording(store, segments=2, recording_id=f"{r:02d}" * 16,
                        payload=lambda seq, rnd=rnd: rnd.randbytes(9_000 + seq * 70_000))
    store.close()
    return DeviceKey.load(root / "keys" / "device.key")


def parse_manifest_bytes(data: bytes) -> None:
    """What the fuzzers' byte-level property exercises: the manifest parser entry point."""
    parse_envelope(data)
