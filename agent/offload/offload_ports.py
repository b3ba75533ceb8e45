"""The uploader's boundary: what it needs of the evidence store, and what it reports of itself.

:class:`~.uploader.Offloader` is handed the store as a :class:`ReceiptTaker` (the log to read
pending segments and proofs from, ``accept_receipt`` to log a receipt, ``leaf_index`` to wait
for a credential being written), never the whole :class:`~agent.evidence.store.EvidenceStore`;
and what ``ctl status``, telemetry and ``fleet watch`` show of it is one :class:`OffloadStatus`
snapshot with its ``offload_*`` fields. Kept apart from the uploader's thread so these
contracts, which the store, the status snapshot and the fleet's schema depend on, read on their
own; :mod:`.uploader` re-exports them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent.evidence.receipt import Receipt

__all__ = ["OffloadLog", "OffloadStatus", "ReceiptTaker"]


class OffloadLog(Protocol):
    """The log as the uploader reads it (entries for the backlog, proofs for finalising)."""

    @property
    def size(self) -> int: ...

    def entry(self, index: int) -> bytes: ...

    def checkpoint(self) -> bytes: ...

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]: ...

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]: ...


class ReceiptTaker(Protocol):
    """The part of :class:`~agent.evidence.store.EvidenceStore` the uploader uses."""

    @property
    def log(self) -> Any: ...

    def accept_receipt(self, receipt: Receipt, *, origin: Mapping[str, Any]) -> int: ...

    def leaf_index(self, device_seq: int) -> int | None: ...


@dataclass(frozen=True, slots=True)
class OffloadStatus:
    """What ``ctl status``, telemetry and ``fleet watch`` show."""

    state: str  # idle | uploading | yielding | unreachable | station-full | refused | stopped
    backlog: int
    backlog_bytes: int
    oldest_s: float | None
    last_error: str | None
    bytes_sent: int
    receipts: int

    def fields(self) -> dict[str, Any]:
        """``offload_*`` keys; unknown values are omitted, never null."""
        out: dict[str, Any] = {"offload_state": self.state, "offload_backlog": self.backlog,
                               "offload_backlog_bytes": self.backlog_bytes,
                               "offload_bytes_sent": self.bytes_sent,
                               "offload_receipts": self.receipts}
        if self.oldest_s is not None:
            out["offload_oldest_s"] = int(self.oldest_s)
        if self.last_error:
            out["offload_last_error"] = self.last_error[:200]
        return out
