"""Where each file of a data directory belongs, and a finding for every one that does not.

A recorder's data directory has one defined shape (DESIGN §3)::

    log/entries.bin  log/checkpoint  log/lock
    log/witnessed/<witness>-<keyid>.note   (each witness's newest cosigned checkpoint)
    keys/device.pub  keys/device.key  keys/retired/<stamp>_<fp>.pub
    recordings/<YYYYmmddTHHMMSSZ>_<device>_<rid8>/<media>  <stem>.manifest.json  <stem>.open.json
    state/…  sync/…   (the agent's working state: outbox, overrides — not evidence)
    station/…         (a loopback collection station's own store, checked by the station)
    ctl.sock  sim-agency.key

The verifier reads evidence only from those places. Anything else is a finding rather than
silence: a second ``entries.bin`` elsewhere (an old log put beside the real one), a copy of a
recording folder under another name (a shadow that would otherwise be checked instead of the
tampered original), media without a manifest, a manifest outside its recording folder, a
symlink or a FIFO where a file belongs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .inventory import Inventory, Node
from .journal import JOURNAL_SUFFIX, MANIFEST_SUFFIX
from .report import Report
from .shape import MEDIA_NAME

__all__ = ["CREDENTIAL_SUFFIX", "RECORDING_DIR", "Layout", "classify", "evidence_like"]

RECORDING_DIR = re.compile(r"^\d{8}T\d{6}Z_[A-Za-z0-9][A-Za-z0-9.-]{0,63}_[0-9a-f]{8}$")
CREDENTIAL_SUFFIX = ".c2pa"  # a segment's C2PA Content Credential (agent.c2pa.sidecar)
_TEMP = re.compile(r"^\..+\.tmp-\d+$")  # agent.atomic.atomic_write's temporary files
_OPERATIONAL = ("state", "sync")
_ROOT_FILES = {"sim-agency.key": "file", "ctl.sock": "special"}


def evidence_like(name: str) -> bool:
    """A name the recorder gives to evidence: found in the wrong place, it is a finding."""
    return (name.endswith((MANIFEST_SUFFIX, JOURNAL_SUFFIX)) or bool(MEDIA_NAME.match(name))
            or name in ("entries.bin", "checkpoint"))


@dataclass(slots=True)
class Layout:
    """The files the verifier will read, by role (only regular files at their places)."""

    log: Node | None = None
    checkpoint: Node | None = None
    public_keys: list[Node] = field(default_factory=list)
    cosigned: list[Node] = field(default_factory=list)  # log/witnessed/*.note
    manifests: list[Node] = field(default_factory=list)
    journals: list[Node] = field(default_factory=list)
    media: dict[str, Node] = field(default_factory=dict)  # rel path → node
    credentials: dict[str, Node] = field(default_factory=dict)  # <stem>.c2pa, by rel path
    recording_dirs: set[str] = field(default_factory=set)


def classify(inv: Inventory, report: Report) -> Layout:
    """Sort every node into its role; report what is out of place."""
    lay = Layout()
    for where, problem in inv.problems:
        report.add("fail", "folder_unreadable", where or ".", problem)
    for node in inv.nodes:
        parts = node.parts
        if parts[0] == "station":
            if len(parts) == 1:
                report.add("ok", "station_data", node.rel,
                           "a collection station's own store: not the device's evidence, "
                           "not checked here (bodycam station checks it)")
            continue
        if node.kind == "symlink":
            report.add("fail", "symlink", node.rel,
                       "a symbolic link in an evidence folder (not followed): evidence must be "
                       "the file itself")
            continue
        if node.kind == "special" and _ROOT_FILES.get(node.rel) != "special":
            report.add("fail", "special_file", node.rel,
                       f"a {node.what} in an evidence folder (not opened)")
            continue
        _place(node, parts, lay, report)
    return lay


def _place(node: Node, parts: tuple[str, ...], lay: Layout, report: Report) -> None:
    top, depth, name = parts[0], len(parts), node.name
    if depth == 1 and ((top in ("log", "keys", "recordings", *_OPERATIONAL) and node.kind == "dir")
                       or _ROOT_FILES.get(top) == node.kind):
        return
    if top in _OPERATIONAL and not evidence_like(name):
        return
    if node.kind == "dir":
        if parts in (("keys", "retired"), ("log", "witnessed")):
            return
        if top == "recordings" and depth == 2:
            if RECORDING_DIR.match(name):
                lay.recording_dirs.add(node.rel)
            else:
                report.add("fail", "unexpected_folder", node.rel,
                           "a folder under recordings/ not named <start>_<device>_<rid8>: "
                           "a copied or planted recording is not evidence")
            return
        report.add("fail" if top in ("log", "keys", "recordings") else "warn",
                   "unexpected_folder", node.rel, "a folder the recorder never creates")
        return
    if _TEMP.match(name):
        report.add("warn", "leftover_temp", node.rel,
                   "temporary file of an interrupted atomic write (harmless)")
        return
    if _known_file(parts, lay, node):
        return
    if evidence_like(name):
        report.add("fail", "misplaced", node.rel,
                   "evidence-like file outside its defined place: it is not read, and a copy "
                   "of evidence elsewhere is not evidence")
    else:
        report.add("warn", "unexpected_file", node.rel, "a file the recorder never writes")


def _known_file(parts: tuple[str, ...], lay: Layout, node: Node) -> bool:
    if parts[0] == "recordings":
        return _known_recording_file(parts, lay, node)
    if parts == ("log", "entries.bin"):
        lay.log = node
    elif parts == ("log", "checkpoint"):
        lay.checkpoint = node
    elif len(parts) == 3 and parts[:2] == ("log", "witnessed") and parts[2].endswith(".note"):
        lay.cosigned.append(node)
    elif parts == ("keys", "device.pub") or (
            len(parts) == 3 and parts[:2] == ("keys", "retired") and parts[2].endswith(".pub")):
        lay.public_keys.append(node)
    elif parts not in (("log", "lock"), ("keys", "device.key"), ("keys", "c2pa.key"),
                       ("keys", "c2pa.crt")):
        return False
    return True


def _known_recording_file(parts: tuple[str, ...], lay: Layout, node: Node) -> bool:
    if len(parts) != 3 or f"recordings/{parts[1]}" not in lay.recording_dirs:
        return False
    name = parts[2]
    if name.endswith(MANIFEST_SUFFIX):
        lay.manifests.append(node)
    elif name.endswith(JOURNAL_SUFFIX):
        lay.journals.append(node)
    elif name.endswith(CREDENTIAL_SUFFIX):
        lay.credentials[node.rel] = node
    elif MEDIA_NAME.match(name):
        lay.media[node.rel] = node
    else:
        return False
    return True
