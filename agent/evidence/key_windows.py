"""Which device key may sign what, by log position: each key's validity window.

A key is rotated because it may be compromised, so trusting every key the log ever introduced
for every manifest and checkpoint would let whoever holds a retired key sign "evidence" logged
after its retirement. Instead each trusted key has a window of log positions:

* a key trusted at the start (``--pubkey``, or the folder's own keys) is valid from entry 0;
* a followed rotation at log index ``r`` from key A to key B ends A's window at ``r`` (the
  rotation entry itself is appended and checkpointed under A) and starts B's at ``r + 1``.

Why these boundaries (from how the device writes, :mod:`agent.evidence.segment_writer` and
:mod:`agent.evidence.key_rotation`): a segment's manifest is signed and its log entry appended
under the store's one lock, back to back, and a rotation takes the same lock -- so the manifest
of the segment entry at index ``i`` is signed by the key in force when the log held ``i``
entries: :meth:`Window.signs_entry`. A checkpoint of size ``s`` is signed after its last entry
``s - 1`` was appended, by the key in force then; at ``s = r + 1`` both keys sign one:
the old key (the rotation's own checkpoint, which is all a crash right after the announcement
leaves -- ``finish_interrupted_rotation`` covers the entry with the old key and installs the
new one, which re-signs only at its next append), and the new key (``EvidenceLog.set_key``
re-signs the same size at once): :meth:`Window.signs_checkpoint`.

Who decides the windows is :func:`agent.evidence.rotation_trust.follow_windows`; this module
only keeps them and answers questions about them. Pure and instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from .keys import fingerprint

__all__ = ["KeyWindows", "Window"]


@dataclass(frozen=True, slots=True)
class Window:
    """One key's stretch of the log: ``first`` is the first entry index it signs a manifest
    for, ``last`` the index of the rotation entry that retired it (None: still in force)."""

    key: bytes  # raw Ed25519, 32 bytes
    first: int
    last: int | None = None

    def signs_entry(self, index: int) -> bool:
        """May this key sign the manifest of the segment logged at ``index``?"""
        return self.first <= index and (self.last is None or index <= self.last)

    def signs_checkpoint(self, size: int) -> bool:
        """May this key sign a checkpoint of ``size`` entries? Its last one is the checkpoint
        over its own retirement (size ``last + 1``)."""
        return self.first <= size and (self.last is None or size <= self.last + 1)


@dataclass(slots=True)
class KeyWindows:
    """Every trusted key's windows (a key may have more than one); built in log order."""

    windows: list[Window] = field(default_factory=list)

    @classmethod
    def starting(cls, keys: Sequence[bytes]) -> KeyWindows:
        """The keys trusted from outside the log, each valid from entry 0."""
        out = cls()
        for k in keys:
            if k not in out.trusted():
                out.windows.append(Window(k, 0))
        return out

    def trusted(self) -> list[bytes]:
        """Every key with a window, in the order they were trusted."""
        seen: list[bytes] = []
        for w in self.windows:
            if w.key not in seen:
                seen.append(w.key)
        return seen

    def in_force(self) -> list[bytes]:
        """The keys whose window is still open (no followed rotation retired them)."""
        return [w.key for w in self.windows if w.last is None]

    def retired(self) -> list[bytes]:
        """Keys whose every window a followed rotation closed."""
        force = self.in_force()
        return [k for k in self.trusted() if k not in force]

    def by_fingerprint(self, fp: str) -> bytes | None:
        """The trusted key with this SHA-256 fingerprint, if any."""
        return next((k for k in self.trusted() if fingerprint(k) == fp), None)

    def retirement(self, key: bytes) -> int | None:
        """The index of the rotation entry that last retired ``key`` (None if never)."""
        ends = [w.last for w in self.windows if w.key == key and w.last is not None]
        return max(ends) if ends else None

    def retire(self, key: bytes, at: int) -> None:
        """Close ``key``'s open window at the rotation entry ``at``."""
        self.windows = [replace(w, last=at) if w.key == key and w.last is None else w
                        for w in self.windows]

    def introduce(self, key: bytes, at: int) -> None:
        """Open a window for ``key`` from the entry after the rotation entry ``at``; a key
        trusted from the start that the log names as a successor starts here instead (it
        cannot have signed anything before it was made)."""
        self.windows = [w for w in self.windows if not (w.key == key and w.last is None
                                                        and w.first == 0)]
        self.windows.append(Window(key, at + 1))

    def signs_entry(self, key: bytes, index: int) -> bool:
        """May ``key`` sign the manifest of the segment logged at ``index``?"""
        return any(w.key == key and w.signs_entry(index) for w in self.windows)

    def signs_checkpoint(self, key: bytes, size: int) -> bool:
        """May ``key`` sign a checkpoint of ``size`` entries?"""
        return any(w.key == key and w.signs_checkpoint(size) for w in self.windows)

    def for_entry(self, index: int) -> list[bytes]:
        """The keys that may sign the manifest of the segment logged at ``index``."""
        return [k for k in self.trusted() if self.signs_entry(k, index)]

    def outside(self, key: bytes, at: int, *, what: str) -> tuple[str, str] | None:
        """Why ``key`` may not sign ``what`` at ``at`` (``manifest``: the entry index;
        ``checkpoint``: the size) as (code, words), or None when it may. Codes:
        ``<what>_retired_key`` (a rotation retired it before) and
        ``<what>_key_not_yet_valid`` (the log introduces it only later)."""
        ok = self.signs_entry(key, at) if what == "manifest" else \
            self.signs_checkpoint(key, at)
        if ok:
            return None
        fp = fingerprint(key)[:16]
        valid = ", ".join(fingerprint(k)[:16] for k in self.for_entry(at)) or "none"
        place = f"log entry {at}" if what == "manifest" else f"a log of {at} entries"
        ended = self.retirement(key)
        if ended is not None and ended < at:
            return (f"{what}_retired_key",
                    f"signed by key {fp}, retired by the rotation at log entry {ended}; the "
                    f"key valid at {place} is {valid}: a retired (perhaps compromised) key "
                    "signs nothing after its rotation")
        return (f"{what}_key_not_yet_valid",
                f"signed by key {fp}, which the log introduces only later; the key valid at "
                f"{place} is {valid}")
