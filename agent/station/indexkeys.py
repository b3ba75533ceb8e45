"""The index's record of the keys a device rotated to (``device_keys``, DEVICE_KEYS_TABLE).

A successor is inserted once (``ON CONFLICT DO NOTHING`` on ``(device_id, fingerprint)``), so
two station processes taking the same rotation keep one row and exactly one of them reports
it as new. Rows are never updated or deleted: a key a device signed with must verify its
evidence for as long as that evidence is kept. The rows are not trusted by themselves --
:meth:`.index.Index.device` follows them from the enrolled key through
:func:`.devicekeys.trusted_successors`, so a row added by hand without a valid endorsement
introduces nothing. ``rotation_positions`` holds the proven log index of the rotation that
introduced a successor (written once, like the key); with the held checkpoint it says where each
retired key's span ends (:mod:`.keyspans`). Kept apart from :mod:`.index` as the desk's records are
(:mod:`.indexdesk`); :class:`~.index.Index` includes this class and supplies the connection.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.evidence.keys import fingerprint

from .devicekeys import Successor, followed_keys
from .enrolment import Enrolment
from .keyspans import retirements

__all__ = ["DeviceKeyRecords", "DeviceKeyRow"]


@dataclass(frozen=True, slots=True)
class DeviceKeyRow:
    """One stored successor key of a device, as listed for a person."""

    device_id: str
    fingerprint: str
    public_key: str  # base64
    endorsed_by: str  # fingerprint of the key whose endorsement introduced it
    entry: str  # the key_rotation entry, canonical JSON
    utc: str  # when the station took it


class DeviceKeyRecords:
    """Successor keys of devices, over the SQL plumbing the index class supplies."""

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> int:
        raise NotImplementedError  # supplied by Index: run one statement, the rows it touched

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError  # supplied by Index: run one query, every row

    def add_device_key(self, device_id: str, successor: Successor, utc: str) -> bool:
        """Store a checked successor key; False if the device already had it."""
        return self._exec("INSERT INTO device_keys (device_id, fingerprint, public_key, "
                          "endorsed_by, entry, utc) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                          "(device_id, fingerprint) DO NOTHING",
                          (device_id, successor.fingerprint, successor.public_b64,
                           successor.endorsed_by, successor.entry.decode("utf-8"), utc)) == 1

    def device_key_rows(self, device_id: str) -> list[DeviceKeyRow]:
        """The stored successor keys of a device, in the order the station took them."""
        return [DeviceKeyRow(*r) for r in self._rows(
            "SELECT device_id, fingerprint, public_key, endorsed_by, entry, utc FROM "
            "device_keys WHERE device_id = ? ORDER BY utc, fingerprint", (device_id,))]

    def add_rotation_position(self, device_id: str, new_fingerprint: str, log_index: int,
                              utc: str) -> bool:
        """Store the proven log index of the rotation that introduced ``new_fingerprint``;
        False if one was stored already (the first proof stands: one entry has one place)."""
        return self._exec("INSERT INTO rotation_positions (device_id, fingerprint, log_index, "
                          "utc) VALUES (?, ?, ?, ?) ON CONFLICT (device_id, fingerprint) DO "
                          "NOTHING", (device_id, new_fingerprint, log_index, utc)) == 1

    def rotation_positions(self, device_id: str) -> dict[str, int]:
        """The proven rotation positions of a device, by the successor key's fingerprint."""
        return {str(fp): int(i) for fp, i in self._rows(
            "SELECT fingerprint, log_index FROM rotation_positions WHERE device_id = ?",
            (device_id,))}

    def _with_successors(self, e: Enrolment) -> Enrolment:
        """``e`` with the successors its stored rotations introduce and where each retired
        key's span ends (the proven positions, else the bound the held checkpoint gives)."""
        found = followed_keys(e.public_key, tuple(r.entry.encode("utf-8")
                                                  for r in self.device_key_rows(e.device_id)))
        if not found:
            return e
        keys = (e.public_key, *found)
        proven = self.rotation_positions(e.device_id)
        positions = [proven.get(fingerprint(k)) for k in found]
        held = [] if None not in positions else self._rows(  # the bound only where needed
            "SELECT size, note FROM checkpoints WHERE device_id = ?", (e.device_id,))
        ends = retirements(keys, positions, int(held[0][0]) if held else None,
                           str(held[0][1]).encode("utf-8") if held else b"")
        return dataclasses.replace(e, successors=found, retirements=ends)
