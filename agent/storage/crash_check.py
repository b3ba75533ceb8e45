"""Crash-consistency checker: prove from real syscalls that a state file is replaced safely.

A state file survives a power cut only if it is replaced in this order: create a temporary
file in the same directory → write → fsync(temp) → rename over the target → fsync(directory).
Reading the code is not proof (a library may buffer, a refactor may drop a call), so this
module runs the code under ``strace`` and checks the order of the calls the kernel actually
saw. It is a test and bench tool (it needs the ``strace`` binary); nothing on the device uses it.

Usage::

    calls = trace_python("from agent.atomic import atomic_write; ...")
    problems = check_atomic_replace(calls, Path("/data/state.json"))
    assert not problems, problems
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Syscall",
    "check_all_replacements",
    "check_atomic_replace",
    "parse_strace",
    "trace",
    "trace_python",
]

_TRACED = "openat,open,creat,write,pwrite64,writev,fsync,fdatasync,close,rename,renameat,renameat2"
_LINE = re.compile(r"^(?:\[pid\s+)?(?P<pid>\d+)\]?\s+(?P<name>\w+)\((?P<args>.*)\)\s+=\s+"
                   r"(?P<result>-?\d+|\?)")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class Syscall:
    """One completed system call as strace printed it."""

    pid: int
    name: str
    args: str
    result: int | None

    @property
    def paths(self) -> list[str]:
        """The quoted string arguments (file names for open/rename)."""
        return _QUOTED.findall(self.args)

    @property
    def fd(self) -> int | None:
        """The first argument as a descriptor (write, fsync, close)."""
        head = self.args.split(",", 1)[0].strip()
        return int(head) if head.isdigit() else None


def parse_strace(text: str) -> list[Syscall]:
    """Parse ``strace -f`` output, joining ``<unfinished ...>``/``resumed>`` pairs."""
    pending: dict[tuple[str, str], str] = {}
    calls: list[Syscall] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.endswith("<unfinished ...>"):
            pid, _, rest = line.partition(" ")
            pending[(pid, rest.split("(", 1)[0])] = line.removesuffix("<unfinished ...>")
            continue
        resumed = re.match(r"^(\d+)\s+<\.\.\. (\w+) resumed>(.*)$", line)
        if resumed:
            pid, name, tail = resumed.groups()
            line = pending.pop((pid, name), f"{pid} {name}(") + tail
        match = _LINE.match(line)
        if match is None:
            continue
        result = match["result"]
        calls.append(Syscall(int(match["pid"]), match["name"], match["args"],
                             None if result == "?" else int(result)))
    return calls


def trace(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
          cwd: Path | None = None, timeout_s: float = 60) -> list[Syscall]:
    """Run ``argv`` under strace and return the file-related calls it made."""
    strace = shutil.which("strace")
    if strace is None:
        raise FileNotFoundError("strace is not installed (apt-get install strace)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "trace"
        subprocess.run([strace, "-f", "-qq", "-e", f"trace={_TRACED}", "-o", str(out), *argv],
                       check=True, env=None if env is None else dict(env), cwd=cwd,
                       timeout=timeout_s, capture_output=True)
        return parse_strace(out.read_text())


def trace_python(code: str, *, cwd: Path | None = None) -> list[Syscall]:
    """Run ``code`` in a fresh interpreter (with this process's ``sys.path``) under strace."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return trace([sys.executable, "-c", code], env=env, cwd=cwd)


def _norm(path: str, cwd: Path | None) -> str:
    return os.path.normpath(path if os.path.isabs(path) or cwd is None else cwd / path)


class _ReplaceAudit:
    """Walks the calls once, remembering descriptors, writes, fsyncs and renames."""

    def __init__(self, target: str, cwd: Path | None) -> None:
        self.target = target
        self.directory = os.path.dirname(target)
        self.cwd = cwd
        self.fds: dict[int, str] = {}
        self.created: set[str] = set()
        self.dirty: dict[str, bool] = {}  # path -> written since its last fsync
        self.renames: list[int] = []
        self.dir_syncs: list[int] = []
        self.problems: list[str] = []

    def opened(self, call: Syscall) -> None:
        if call.result is None or call.result < 0 or not call.paths:
            return
        path = _norm(call.paths[0], self.cwd)
        self.fds[call.result] = path
        if "O_CREAT" in call.args or call.name == "creat":
            self.created.add(path)

    def synced(self, path: str, index: int) -> None:
        self.dirty[path] = False
        if path == self.directory and self.renames:
            self.dir_syncs.append(index)

    def renamed(self, call: Syscall, index: int) -> None:
        names = call.paths
        if len(names) < 2 or _norm(names[1], self.cwd) != self.target:
            return
        source = _norm(names[0], self.cwd)
        self.renames.append(index)
        if os.path.dirname(source) != self.directory:
            self.problems.append(f"temporary {source} is not in {self.directory}")
        if source not in self.created:
            self.problems.append(f"temporary {source} was not freshly created")
        if source not in self.dirty:
            self.problems.append(f"nothing was written to {source} before the rename")
        elif self.dirty[source]:
            self.problems.append(
                f"{source} was not fsynced between its last write and the rename")

    def feed(self, index: int, call: Syscall) -> None:
        fd = call.fd
        fd_path = self.fds.get(fd) if fd is not None else None
        if call.name in ("openat", "open", "creat"):
            self.opened(call)
        elif call.name in ("write", "pwrite64", "writev") and fd_path is not None:
            self.dirty[fd_path] = True
        elif call.name in ("fsync", "fdatasync") and fd_path is not None and call.result == 0:
            self.synced(fd_path, index)
        elif call.name == "close" and fd is not None:
            self.fds.pop(fd, None)
        elif call.name.startswith("rename") and call.result == 0:
            self.renamed(call, index)

    def verdict(self) -> list[str]:
        if not self.renames:
            return [*self.problems, f"{self.target} was never renamed into place"]
        if not self.dir_syncs or self.dir_syncs[-1] < self.renames[-1]:
            return [*self.problems,
                    f"directory {self.directory} was not fsynced after the rename"]
        return self.problems


def check_atomic_replace(calls: Sequence[Syscall], target: Path, *,
                         cwd: Path | None = None) -> list[str]:
    """Problems with how ``target`` was replaced (empty when it was done right).

    Checks, for every rename onto ``target``: the source was created in the same directory
    and written through a descriptor that was fsynced after its last write and before the
    rename, and the directory was opened and fsynced after the rename.
    """
    audit = _ReplaceAudit(_norm(str(target), cwd), cwd)
    for index, call in enumerate(calls):
        audit.feed(index, call)
    return audit.verdict()


def check_all_replacements(calls: Sequence[Syscall], *,
                           cwd: Path | None = None) -> dict[str, list[str]]:
    """Check every file that was renamed into place; maps each target to its problems."""
    targets = {
        _norm(call.paths[1], cwd) for call in calls
        if call.name.startswith("rename") and call.result == 0 and len(call.paths) >= 2
    }
    return {target: check_atomic_replace(calls, Path(target), cwd=cwd)
            for target in sorted(targets)}
