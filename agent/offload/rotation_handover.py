"""Handing the device's key rotations to the station before the evidence the new key signs.

After a rotation (``bodycam keys init --rotate``, :meth:`EvidenceStore.rotate_key`) every
manifest and checkpoint is signed by a key the station never enrolled; the station takes it
only from the log's ``key_rotation`` entry, whose endorsement by the old key it checks
(docs/STATION-API.md §4b). So before it finalises segments the uploader presents every
rotation entry of the log the station has not taken yet, oldest first (a chain A → B → C
needs A → B first), with the entry's exact bytes and -- given the log -- its position: the log
index with an inclusion proof into the current checkpoint and that checkpoint's consistency
with the one the station holds. The station ends the old key's span at that index (a key is
rotated because it may be compromised: it must sign nothing the log holds after its rotation).

Which entries a station took is remembered by log index in ``state/offload-rotations.json``
(per station URL), so a restart does not present them again. Like the upload book it is a
cache, never evidence: losing it costs one more presentation, which the station answers
as already taken. A refused presentation (an old station without the endpoint, a rotation the
station cannot follow) is reported and tried again after ``retry_s``, doubling at each refusal
in a row up to :data:`MAX_REFUSED_WAIT_S` (a rotation the station can never follow must not
fill its events every few seconds); the segments go ahead meanwhile (the station judges each
on its own).

Threading: the uploader thread owns it; no lock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from agent.atomic import atomic_write
from agent.station.api_client import LogProofs, StationClient, StationRefused

__all__ = ["MAX_REFUSED_WAIT_S", "ROTATIONS_FILE", "RotationHandover"]

ROTATIONS_FILE = "offload-rotations.json"
MAX_REFUSED_WAIT_S = 3600.0
_MAX_BYTES = 1 << 20

log = logging.getLogger(__name__)


class RotationHandover:
    """Which rotation entries one station still needs, and presenting them (module doc)."""

    def __init__(self, state_dir: Path, *, station: str, device_id: str,
                 retry_s: float, log: LogProofs | None = None) -> None:
        self._path = Path(state_dir) / ROTATIONS_FILE
        self._station = station
        self._device_id = device_id
        self._retry_s = retry_s
        self._log = log  # proves each entry's position; None: the entry alone
        self._taken = self._read()
        self._not_before = 0.0
        self._refused_wait = 0.0  # after the last refusal in a row; 0 after a success

    @property
    def taken(self) -> frozenset[int]:
        """Log indexes of the rotation entries this station took."""
        return frozenset(self._taken.get(self._station, ()))

    def due(self, rotations: Sequence[tuple[int, bytes]],
            now: float) -> list[tuple[int, bytes]]:
        """The rotations to present now (none while a refusal's ``retry_s`` runs)."""
        if now < self._not_before:
            return []
        taken = self.taken
        return [(i, e) for i, e in rotations if i not in taken]

    def present(self, client: StationClient, owed: Sequence[tuple[int, bytes]],
                now: float) -> str | None:
        """Present ``owed`` oldest first; a refusal stops the rest (a later rotation of a
        chain cannot be taken before it) and is returned as a message, None if all were
        taken. :class:`StationUnreachable` propagates: the uploader backs off."""
        for index, entry in sorted(owed):
            try:
                answer = (client.present_rotation(self._device_id, entry) if self._log is None
                          else client.present_rotation(self._device_id, entry,
                                                       leaf_index=index, log=self._log))
            except StationRefused as exc:
                self._refused_wait = min(max(self._retry_s, 2 * self._refused_wait),
                                         max(self._retry_s, MAX_REFUSED_WAIT_S))
                self._not_before = now + self._refused_wait
                log.error("offload: the station refused the key rotation at log index %d: %s "
                          "(evidence signed by the new key is refused until it takes it)",
                          index, exc)
                return f"key rotation at log index {index}: {exc}"
            self._refused_wait = 0.0
            self._taken.setdefault(self._station, []).append(index)
            self._write()
            log.info("offload: the station took the key rotation at log index %d (key %s, "
                     "%s)", index, str(answer.get("fingerprint", ""))[:16],
                     "new" if answer.get("added") else "already known")
        return None

    def _read(self) -> dict[str, list[int]]:
        try:
            doc = json.loads(self._path.read_bytes()[:_MAX_BYTES])
            return {str(k): sorted({int(i) for i in v}) for k, v in doc["stations"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("%s unreadable (%s): key rotations are presented again", self._path,
                        exc)
            return {}

    def _write(self) -> None:
        doc = {"stations": {k: sorted(set(v)) for k, v in sorted(self._taken.items())}}
        self._path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self._path, json.dumps(doc, sort_keys=True).encode(), mode=0o600)
