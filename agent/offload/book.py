"""Upload URLs that survive a restart, so an interrupted upload resumes instead of restarting.

``state/offload-uploads.json`` maps a segment's ``device_seq`` to the station URL and tus
upload path it is being sent to, with the ciphertext hash it was created for. It is a cache,
never evidence: losing it costs a re-upload (a new upload of the same bytes, which the station
stores once), never a segment. It is written atomically (temp file, fsync, rename) *before*
the first byte of a new upload goes out, so a SIGKILL at any point finds either no entry
(nothing was sent) or the entry whose durable offset the station reports.

Threading: the uploader thread owns it; no lock.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from agent.atomic import atomic_write

__all__ = ["BOOK_FILE", "UploadBook", "UploadRef"]

BOOK_FILE = "offload-uploads.json"
_MAX_BYTES = 1 << 20

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UploadRef:
    """One upload in progress: where, and for which ciphertext."""

    station: str
    upload: str
    cipher_sha256: str
    live: bool = False


class UploadBook:
    """``device_seq`` → :class:`UploadRef`, persisted under ``state/``."""

    def __init__(self, state_dir: Path) -> None:
        self._path = Path(state_dir) / BOOK_FILE
        self._refs: dict[int, UploadRef] = self._read()

    def get(self, device_seq: int, station: str, cipher_sha256: str | None) -> UploadRef | None:
        """The upload of this segment at this station (None if none, or for other bytes)."""
        ref = self._refs.get(device_seq)
        if ref is None or ref.station != station:
            return None
        if cipher_sha256 is not None and ref.cipher_sha256 not in ("", cipher_sha256):
            return None
        return ref

    def put(self, device_seq: int, ref: UploadRef) -> None:
        """Remember an upload (durable before this returns)."""
        self._refs[device_seq] = ref
        self._write()

    def drop(self, device_seq: int) -> None:
        """Forget an upload (receipted, or gone at the station)."""
        if self._refs.pop(device_seq, None) is not None:
            self._write()

    def __len__(self) -> int:
        return len(self._refs)

    def _read(self) -> dict[int, UploadRef]:
        try:
            raw = self._path.read_bytes()[:_MAX_BYTES]
            doc = json.loads(raw)
            return {int(k): UploadRef(str(v["station"]), str(v["upload"]),
                                      str(v.get("cipher_sha256", "")), bool(v.get("live", False)))
                    for k, v in doc["uploads"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("%s unreadable (%s): interrupted uploads start again", self._path, exc)
            return {}

    def _write(self) -> None:
        doc = {"uploads": {str(k): {"station": r.station, "upload": r.upload,
                                    "cipher_sha256": r.cipher_sha256, "live": r.live}
                           for k, r in sorted(self._refs.items())}}
        atomic_write(self._path, json.dumps(doc, sort_keys=True).encode(), mode=0o600)
