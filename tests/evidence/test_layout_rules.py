"""Where each file of a data directory belongs (agent/evidence/layout.py), one place at a time.

The inventory is built by hand (the walk itself is tested elsewhere): each test lists the
entries of a data directory and checks the role each one is given and the exact finding for
every one out of place -- level, code, where, and the words a defence expert reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.evidence.inventory import Inventory, Kind, Node
from agent.evidence.layout import RECORDING_DIR, Layout, classify, evidence_like
from agent.evidence.report import Report

REC = "recordings/20261127T100000Z_BC-0001_deadbeef"
STEM = "BC-0001_20261127T100000.000Z_deadbeef_00000"

STRANGE_FOLDER = "a folder the recorder never creates"
STRANGE_FILE = "a file the recorder never writes"
MISPLACED = ("evidence-like file outside its defined place: it is not read, and a copy of "
             "evidence elsewhere is not evidence")
NOT_A_RECORDING = ("a folder under recordings/ not named <start>_<device>_<rid8>: a copied or "
                   "planted recording is not evidence")
SYMLINK = ("a symbolic link in an evidence folder (not followed): evidence must be the file "
           "itself")


def node(spec: str) -> Node:
    """``"a/b/"`` a folder, ``"@a/b"`` a symlink, ``"a/b|FIFO"`` a special file, else a file."""
    kind: Kind = "file"
    what = ""
    if spec.startswith("@"):
        kind, spec = "symlink", spec[1:]
    elif "|" in spec:
        spec, what = spec.split("|")
        kind = "special"
    elif spec.endswith("/"):
        kind, spec = "dir", spec[:-1]
    return Node(spec, Path("/data") / spec, kind, 0, what)


def layout(*specs: str, problems: tuple[tuple[str, str], ...] = ()) -> tuple[
        list[tuple[str, str, str, str]], Layout]:
    """Classify an inventory of ``specs`` (with the usual top folders): findings and layout."""
    base = ["log/", "keys/", "recordings/", f"{REC}/"]
    nodes = sorted((node(s) for s in [*base, *specs]), key=lambda n: n.rel)
    report = Report("/data")
    lay = classify(Inventory(nodes, list(problems), True), report)
    return [(f.level, f.code, f.where, f.message) for f in report.findings], lay


def test_a_well_formed_data_directory_has_every_file_in_its_role() -> None:
    """Everything the recorder writes is read from its place and nothing is a finding, except
    the note that a station's store is beside the device's evidence."""
    found, lay = layout(
        "log/entries.bin", "log/checkpoint", "log/lock", "log/witnessed/",
        "log/witnessed/w1-0a0b0c0d.note", "keys/device.pub", "keys/device.key",
        "keys/c2pa.key", "keys/c2pa.crt", "keys/retired/", "keys/retired/20261101_ab12.pub",
        f"{REC}/{STEM}.mp4.age", f"{REC}/{STEM}.manifest.json", f"{REC}/{STEM}.open.json",
        f"{REC}/{STEM}.c2pa", f"{REC}/{STEM}.jpg", "state/", "state/outbox.sqlite",
        "state/cache/", "state/cache/x.bin", "sync/", "sync/overrides.json", "station/",
        "station/log/entries.bin", "station/pki/", "ctl.sock|socket", "sim-agency.key")
    assert found == [("ok", "station_data", "station",
                      "a collection station's own store: not the device's evidence, not "
                      "checked here (bodycam station checks it)")]
    assert lay.log is not None and lay.log.rel == "log/entries.bin"
    assert lay.checkpoint is not None and lay.checkpoint.rel == "log/checkpoint"
    assert [n.rel for n in lay.public_keys] == [
        "keys/device.pub", "keys/retired/20261101_ab12.pub"]
    assert [n.rel for n in lay.cosigned] == [
        "log/witnessed/w1-0a0b0c0d.note"]
    assert [n.rel for n in lay.manifests] == [
        f"{REC}/{STEM}.manifest.json"]
    assert [n.rel for n in lay.journals] == [f"{REC}/{STEM}.open.json"]
    assert sorted(lay.media) == [f"{REC}/{STEM}.jpg",
                                 f"{REC}/{STEM}.mp4.age"]
    assert [n.rel for n in lay.credentials.values()] == [f"{REC}/{STEM}.c2pa"]
    assert [n.rel for n in lay.media.values()] == sorted(lay.media)
    assert lay.recording_dirs == {REC}


@pytest.mark.parametrize(("spec", "expected"), [
    # links and special files, wherever they are
    (f"@{REC}/{STEM}.mp4.age", ("fail", "symlink", SYMLINK)),
    ("@log", ("fail", "symlink", SYMLINK)),
    (f"{REC}/{STEM}.manifest.json|FIFO", ("fail", "special_file",
                                          "a FIFO in an evidence folder (not opened)")),
    ("sim-agency.key|FIFO", ("fail", "special_file", "a FIFO in an evidence folder (not opened)")),
    ("state/ctl.sock|socket", ("fail", "special_file",
                               "a socket in an evidence folder (not opened)")),
    # the root's own files with the wrong kind, and top folders that are files
    ("ctl.sock", ("warn", "unexpected_file", STRANGE_FILE)),
    ("sim-agency.key/", ("warn", "unexpected_folder", STRANGE_FOLDER)),
    ("notes.txt", ("warn", "unexpected_file", STRANGE_FILE)),
    # folders the recorder never makes
    ("other/", ("warn", "unexpected_folder", STRANGE_FOLDER)),
    ("log/old/", ("fail", "unexpected_folder", STRANGE_FOLDER)),
    ("keys/old/", ("fail", "unexpected_folder", STRANGE_FOLDER)),
    (f"{REC}/sub/", ("fail", "unexpected_folder", STRANGE_FOLDER)),
    ("log/witnessed/old/", ("fail", "unexpected_folder", STRANGE_FOLDER)),
    ("recordings/copy/", ("fail", "unexpected_folder", NOT_A_RECORDING)),
    # evidence-like names out of place
    ("entries.bin", ("fail", "misplaced", MISPLACED)),
    ("checkpoint", ("fail", "misplaced", MISPLACED)),
    ("state/entries.bin", ("fail", "misplaced", MISPLACED)),
    ("sync/x.manifest.json", ("fail", "misplaced", MISPLACED)),
    ("keys/checkpoint", ("fail", "misplaced", MISPLACED)),
    (f"recordings/{STEM}.mp4.age", ("fail", "misplaced", MISPLACED)),
    (f"recordings/{STEM}.open.json", ("fail", "misplaced", MISPLACED)),
    ("log/witnessed/entries.bin", ("fail", "misplaced", MISPLACED)),
    # other files out of place
    ("log/entries.bin.bak", ("warn", "unexpected_file", STRANGE_FILE)),
    ("log/witnessed/w1.txt", ("warn", "unexpected_file", STRANGE_FILE)),
    ("log/w1.note", ("warn", "unexpected_file", STRANGE_FILE)),
    ("keys/other.pub", ("warn", "unexpected_file", STRANGE_FILE)),
    ("keys/retired/old.key", ("warn", "unexpected_file", STRANGE_FILE)),
    ("keys/device.pub.old", ("warn", "unexpected_file", STRANGE_FILE)),
    (f"{REC}/notes.txt", ("warn", "unexpected_file", STRANGE_FILE)),
    # temporary files of an atomic write
    ("log/.checkpoint.tmp-4711", ("warn", "leftover_temp",
                                  "temporary file of an interrupted atomic write (harmless)")),
    (f"{REC}/.{STEM}.manifest.json.tmp-12", ("warn", "leftover_temp",
                                             "temporary file of an interrupted atomic write "
                                             "(harmless)")),
    ("log/.checkpoint.tmp-", ("warn", "unexpected_file", STRANGE_FILE)),
    ("log/checkpoint.tmp-1", ("warn", "unexpected_file", STRANGE_FILE)),
    ("log/.tmp-1", ("warn", "unexpected_file", STRANGE_FILE)),
])
def test_each_out_of_place_entry_is_one_finding(spec: str, expected: tuple[str, str, str]) -> None:
    """One entry out of place: exactly one finding, naming it, with the right words."""
    found, _ = layout(spec)
    level, code, message = expected
    rel = node(spec).rel
    assert found == [(level, code, rel, message)]


def test_files_in_folders_that_are_not_recordings_are_not_read() -> None:
    """A manifest and media in a copied recording folder are findings, not evidence."""
    found, lay = layout("recordings/copy/", f"recordings/copy/{STEM}.manifest.json",
                        f"recordings/copy/{STEM}.mp4.age", f"recordings/copy/{STEM}.c2pa",
                        f"{REC}/sub/", f"{REC}/sub/{STEM}.mp4.age")
    assert [(lvl, code, where) for lvl, code, where, _ in found] == [
        ("fail", "unexpected_folder", f"{REC}/sub"),
        ("fail", "misplaced", f"{REC}/sub/{STEM}.mp4.age"),
        ("fail", "unexpected_folder", "recordings/copy"),
        ("warn", "unexpected_file", f"recordings/copy/{STEM}.c2pa"),
        ("fail", "misplaced", f"recordings/copy/{STEM}.manifest.json"),
        ("fail", "misplaced", f"recordings/copy/{STEM}.mp4.age")]
    assert lay.manifests == [] and lay.media == {} and lay.credentials == {}
    assert lay.recording_dirs == {REC}


def test_a_station_folder_is_skipped_whatever_is_inside() -> None:
    """Everything under station/ is the station's business: one OK note, no findings; what
    comes after it is still checked."""
    found, _ = layout("station/", "station/entries.bin", "@station/link", "station/x|FIFO",
                      "station/odd/", "sync/", "sync/entries.bin")
    assert [(lvl, code, where) for lvl, code, where, _ in found] == [
        ("ok", "station_data", "station"), ("fail", "misplaced", "sync/entries.bin")]


def test_folders_that_could_not_be_walked_are_failures() -> None:
    """What the walk could not list is named; the root as '.'."""
    found, _ = layout(problems=(("", "cannot list the folder (Permission denied)"),
                                (REC, "nested deeper than 8 levels: not examined")))
    assert found == [("fail", "folder_unreadable", ".", "cannot list the folder (Permission "
                      "denied)"),
                     ("fail", "folder_unreadable", REC,
                      "nested deeper than 8 levels: not examined")]


@pytest.mark.parametrize(("name", "ok"), [
    ("20261127T100000Z_BC-0001_deadbeef", True),
    ("20261127T100000Z_b_00000000", True),
    ("20261127T100000Z_" + "D" * 64 + "_deadbeef", True),
    ("20261127T100000Z_" + "D" * 65 + "_deadbeef", False),
    ("20261127T100000Z_-BC_deadbeef", False),
    ("20261127T100000Z_BC-0001_deadbee", False),
    ("20261127T100000Z_BC-0001_deadbeef0", False),
    ("20261127T100000Z_BC-0001_DEADBEEF", False),
    ("x20261127T100000Z_BC-0001_deadbeef", False),
    ("2026112T100000Z_BC-0001_deadbeef", False),
    ("20261127T10000Z_BC-0001_deadbeef", False),
    ("20261127T100000_BC-0001_deadbeef", False),
    ("20261127T100000Z__deadbeef", False),
    ("20261127T100000Z_BC 1_deadbeef", False),
])
def test_recording_folder_names(name: str, ok: bool) -> None:
    """<YYYYmmddTHHMMSSZ>_<device (1-64)>_<8 lowercase hex>, anchored at both ends."""
    assert bool(RECORDING_DIR.match(name)) is ok
    found, lay = layout(f"recordings/{name}/")
    assert (f"recordings/{name}" in lay.recording_dirs) is ok
    assert (found == []) is ok


@pytest.mark.parametrize(("name", "ok"), [
    ("x.manifest.json", True), ("x.open.json", True), ("entries.bin", True),
    ("checkpoint", True), (f"{STEM}.mp4", True), (f"{STEM}.jpg.age", True),
    ("x.json", False), ("entries.bin.1", False), ("checkpoints", False), ("x.c2pa", False),
    ("x.mp4.txt", False), ("lock", False),
])
def test_evidence_like_names(name: str, ok: bool) -> None:
    """What counts as a name the recorder gives to evidence."""
    assert evidence_like(name) is ok
