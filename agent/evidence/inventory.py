"""Every file under a folder handed to the verifier, found and read without trusting it.

The verifier is an adversarial parser: whoever hands it a folder may have planted a FIFO
named like a manifest (opening it for reading would block forever), a symlink that swaps a
segment for a file elsewhere, a 100 MB "manifest", or millions of files. So:

* the walk uses ``lstat`` only and never follows a link: symlinks and special files are
  listed as what they are, never opened;
* it is bounded in depth and in the number of entries, and says when it stopped;
* :func:`read_bounded` opens with ``O_NOFOLLOW | O_NONBLOCK``, checks with ``fstat`` that it
  holds a regular file (a file swapped for a FIFO between walk and open is still refused) and
  refuses more than a stated number of bytes *before* reading them.

Nothing here interprets contents; :mod:`agent.evidence.layout` says what belongs where.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

__all__ = ["MAX_DEPTH", "MAX_ENTRIES", "Inventory", "Node", "UnsafeFile", "open_regular",
           "read_bounded", "walk"]

MAX_DEPTH = 8          # data dir / recordings / <recording> / file is depth 3
MAX_ENTRIES = 500_000  # a year of 60 s segments is ~1.6 million files: split such folders

Kind = Literal["file", "dir", "symlink", "special"]


class UnsafeFile(Exception):
    """A file the verifier will not read: not regular, a link, too large, unreadable."""


@dataclass(frozen=True, slots=True)
class Node:
    """One directory entry: its path relative to the root (POSIX form) and what it is."""

    rel: str
    path: Path
    kind: Kind
    size: int
    what: str  # for special files: "FIFO", "socket", "device"; else ""

    @property
    def parts(self) -> tuple[str, ...]:
        """Path components relative to the root."""
        return tuple(self.rel.split("/"))

    @property
    def name(self) -> str:
        """The entry's own name."""
        return self.path.name


@dataclass(slots=True)
class Inventory:
    """The walk's result: every entry found, and what could not be walked."""

    nodes: list[Node]
    problems: list[tuple[str, str]]  # (where, what went wrong)
    complete: bool


def walk(root: Path, *, max_entries: int = MAX_ENTRIES, max_depth: int = MAX_DEPTH) -> Inventory:
    """List every entry below ``root`` (not ``root`` itself), sorted, links not followed."""
    inv = Inventory([], [], True)
    for node in _walk(Path(root), "", 1, inv, max_depth):
        if len(inv.nodes) >= max_entries:
            inv.problems.append(("", f"more than {max_entries} entries: the rest was not examined"))
            inv.complete = False
            break
        inv.nodes.append(node)
    inv.nodes.sort(key=lambda n: n.rel)
    return inv


def _walk(path: Path, rel: str, depth: int, inv: Inventory, max_depth: int) -> Iterator[Node]:
    try:
        with os.scandir(path) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        inv.problems.append((rel or ".", f"cannot list the folder ({exc.strerror or exc})"))
        inv.complete = False
        return
    for entry in entries:
        sub = f"{rel}/{entry.name}" if rel else entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            inv.problems.append((sub, f"cannot stat ({exc.strerror or exc})"))
            inv.complete = False
            continue
        node = _node(Path(entry.path), sub, st)
        yield node
        if node.kind == "dir":
            if depth >= max_depth:
                inv.problems.append((sub, f"nested deeper than {max_depth} levels: not examined"))
                inv.complete = False
                continue
            yield from _walk(Path(entry.path), sub, depth + 1, inv, max_depth)


def _node(path: Path, rel: str, st: os.stat_result) -> Node:
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return Node(rel, path, "symlink", 0, "")
    if stat.S_ISDIR(mode):
        return Node(rel, path, "dir", 0, "")
    if stat.S_ISREG(mode):
        return Node(rel, path, "file", st.st_size, "")
    what = ("FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode)
            else "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file")
    return Node(rel, path, "special", 0, what)


def open_regular(path: Path) -> BinaryIO:
    """Open a regular file for reading without following a link or blocking on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnsafeFile(f"cannot open ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile("not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise


def read_bounded(path: Path, limit: int) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes; UnsafeFile otherwise."""
    with open_regular(path) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise UnsafeFile(f"{size} bytes, more than the {limit} such a file can hold")
        try:
            data = fh.read(limit + 1)
        except OSError as exc:
            raise UnsafeFile(f"cannot read ({exc.strerror or exc})") from None
    if len(data) > limit:  # grew while we read it
        raise UnsafeFile(f"more than the {limit} bytes such a file can hold")
    return data
