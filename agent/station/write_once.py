"""The write-once store: where verified segments live, laid out as on the device.

``<store>/<device>/recordings/<recording dir>/<media name>`` with its ``.manifest.json``
beside it — the device's own layout, so the tools that read a device's evidence read this.

Crash-safety steps of :meth:`WriteOnceStore.place`:

1. the verified partial file is made read-only (0444) and fsynced;
2. it is *hard-linked* to its final name: ``link`` fails if the name exists (the same
   no-overwrite guarantee as ``O_EXCL``, atomic on local file systems, NFS and CephFS), so a
   stored file is never replaced; if the name exists, its bytes are compared — the same bytes
   are an idempotent success, different ones a refusal (409) and an alarm;
3. the manifest is written to a new ``O_EXCL`` file (0444), fsynced and linked the same way;
4. the final directory is fsynced, then the partial names are removed.

A crash between any two steps leaves either nothing in the store or a complete, verified file
(a retried upload finds it and succeeds idempotently); nothing partial ever has a final name.

A segment's checked C2PA credential (:meth:`WriteOnceStore.place_credential`) goes beside it as
``<stem>.c2pa`` the same way: a new 0444 file in ``.incoming``, fsynced, linked to its final
name (never replaced), the directory fsynced. A refused credential is kept once per segment in
``.quarantine/`` (:meth:`WriteOnceStore.quarantine_credential`), never beside the segment.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from agent.atomic import fsync_dir, write_durable
from agent.evidence.journal import MANIFEST_SUFFIX, sidecar
from agent.evidence.layout import CREDENTIAL_SUFFIX
from hw.errors import StorageFull

from .refusal import Refused
from .uploads import INCOMING, QUARANTINE, sha256_file

__all__ = ["Placement", "WriteOnceStore"]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a segment is stored and whether this call stored it (False: already there)."""

    media: Path
    manifest: Path
    new: bool


class WriteOnceStore:
    """Places verified segments; never overwrites, never deletes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def media_path(self, device_id: str, rel_path: str) -> Path:
        """The final path of a segment whose log entry names ``rel_path`` (already checked)."""
        parts = rel_path.split("/")
        if len(parts) != 3 or parts[0] != "recordings" or any(p in ("", ".", "..") for p in parts):
            raise Refused(422, "bad-path", "the segment's path is not recordings/<dir>/<name>")
        return self.root / device_id / rel_path

    def place(self, media: Path, partial: Path, manifest_bytes: bytes, cipher_sha256: str) -> Placement:
        """Store the partial file and its manifest under their final names (module steps)."""
        manifest = sidecar(media, MANIFEST_SUFFIX)
        try:
            self._mkdirs(media.parent)
            new = self._link_media(partial, media, cipher_sha256)
            tmp = partial.with_name(partial.name + ".manifest")
            _write_new(tmp, manifest_bytes)
            try:
                new = _link_bytes(tmp, manifest, manifest_bytes, Refused(
                    409, "segment-conflict", f"{manifest.name} is already stored with another "
                    "manifest; the stored one is kept", alarm=True)) or new
            finally:
                _discard_temp(tmp)
            fsync_dir(media.parent)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(f"the store is full ({exc.strerror})") from exc
            raise
        return Placement(media, manifest, new)

    def place_credential(self, media: Path, data: bytes) -> bool:
        """Link a checked credential beside its stored segment as ``<stem>.c2pa``; False if
        exactly these bytes are already there, 409 if other bytes are (the stored ones stay)."""
        final = sidecar(media, CREDENTIAL_SUFFIX)
        tmp = self.root / INCOMING / f"{secrets.token_hex(16)}.c2pa"
        try:
            _write_new(tmp, data)
            try:
                new = _link_bytes(tmp, final, data, Refused(
                    409, "c2pa-conflict", "another credential is already stored beside this "
                    "segment; it is kept"))
            finally:
                _discard_temp(tmp)
            fsync_dir(final.parent)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFull(f"the store is full ({exc.strerror})") from exc
            raise
        return new

    def quarantine_credential(self, device_id: str, device_seq: int, data: bytes) -> Path | None:
        """Keep the first refused credential of a segment (for whoever investigates); None if
        one is already kept (the index event names every refusal's hash)."""
        path = self.root / QUARANTINE / f"{device_id}.{device_seq}{CREDENTIAL_SUFFIX}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
        except FileExistsError:
            return None
        _write_fd(fd, data)
        fsync_dir(path.parent)
        return path

    def _mkdirs(self, path: Path) -> None:
        missing = []
        p = path
        while not p.exists():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            with contextlib.suppress(FileExistsError):
                d.mkdir()
            fsync_dir(d.parent)

    def _link_media(self, partial: Path, media: Path, cipher_sha256: str) -> bool:
        if partial.exists():
            os.chmod(partial, 0o444)
            fd = os.open(partial, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(partial, media)
                return True
            except FileExistsError:
                pass
        elif not media.exists():
            raise Refused(410, "upload-gone", "the upload's bytes are no longer here")
        if sha256_file(media)[0] != cipher_sha256:
            raise Refused(409, "segment-conflict", f"{media.name} is already stored with other "
                          "bytes; the stored file is kept", alarm=True)
        return False

def _link_bytes(tmp: Path, final: Path, data: bytes, conflict: Refused) -> bool:
    """Give ``tmp`` the write-once name ``final``: True if new, False if exactly ``data`` is
    already stored there; ``conflict`` is raised if other bytes are (they stay)."""
    try:
        os.link(tmp, final)
        return True
    except FileExistsError:
        with open(final, "rb") as f:
            if f.read(len(data) + 1) != data:
                raise conflict from None
        return False


def _write_new(path: Path, data: bytes) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # a leftover of a crashed attempt: never a final name
    _write_fd(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444), data)


def _write_fd(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, fsync and close it."""
    try:
        write_durable(fd, data)
    finally:
        os.close(fd)


def _discard_temp(path: Path) -> None:
    """Remove a temporary file this store wrote itself (a stored file is never passed here)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
