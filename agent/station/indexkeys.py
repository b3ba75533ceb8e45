"""The index's record of the keys a device rotated to (``device_keys``, DEVICE_KEYS_TABLE).

A successor is inserted once (``ON CONFLICT DO NOTHING`` on ``(device_id, fingerprint)``), so
two station processes taking the same rotation keep one row and exactly one of them reports
it as new. Rows are never updated or deleted: a key a device signed with must verify its
evidence for as long as that evidence is kept. The rows are not trusted by themselves --
:meth:`.index.Index.device` follows them from the enrolled key through
:func:`.devicekeys.trusted_successors`, so a row added by hand without a valid endorsement
introduces nothing. Kept apart from :mod:`.index` as the desk's records are
(:mod:`.indexdesk`); :class:`~.index.Index` includes this class and supplies the connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .devicekeys import Successor

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
