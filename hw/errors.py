"""One exception tree for the whole product.

Everything the recorder raises on purpose derives from :class:`BodycamError`, so a caller can
catch "our" failures without swallowing programming errors. Leaves also inherit the matching
built-in (``StorageFull`` is an ``OSError``) so generic handlers keep working.

It lives in ``hw`` because drivers raise these too and ``hw`` must not import ``agent``;
``hw.errors`` re-exports it.
"""

from __future__ import annotations

import errno

__all__ = [
    "AudioError",
    "BodycamError",
    "CameraError",
    "CameraStalled",
    "ClockError",
    "CommandRejected",
    "ConfigError",
    "DeviceMissing",
    "EvidenceError",
    "GpsError",
    "HardwareError",
    "KeyMissing",
    "LogCorrupt",
    "MatterError",
    "NmeaChecksumError",
    "PowerError",
    "ReceiptRejected",
    "RecorderError",
    "RecordingRefused",
    "StorageError",
    "StorageFull",
    "StorageReadOnly",
    "StorageWriteError",
    "SyncError",
    "VerificationError",
]


class BodycamError(Exception):
    """Root of every error the recorder raises deliberately."""


class ConfigError(BodycamError, ValueError):
    """A configuration file or value is invalid; the message names the key, value and rule."""

    def __init__(
        self, message: str, *, key: str | None = None, source: str | None = None
    ) -> None:
        self.key = key
        self.source = source
        prefix = f"{source}: " if source else ""
        where = f"{key}: " if key else ""
        super().__init__(f"{prefix}{where}{message}")


# --- hardware -------------------------------------------------------------------------------
class HardwareError(BodycamError, OSError):
    """A device did not behave as its contract says."""


class DeviceMissing(HardwareError):
    """A configured device is absent; on a Pi this is fatal, never a silent fallback."""


class CameraError(HardwareError):
    """The camera or its encoder failed."""


class CameraStalled(CameraError):
    """No frame arrived within the watchdog window."""


class AudioError(HardwareError):
    """The microphone or its stream failed."""


class GpsError(HardwareError):
    """The GPS receiver or its serial line failed."""


class NmeaChecksumError(GpsError, ValueError):
    """An NMEA sentence lacked a valid checksum and was rejected."""


class PowerError(HardwareError):
    """A battery or supply reading could not be taken."""


# --- storage --------------------------------------------------------------------------------
class StorageError(BodycamError, OSError):
    """The evidence store could not be written or read."""


class StorageFull(StorageError):
    """Not enough free space to store what must be stored."""

    def __init__(self, message: str = "storage full") -> None:
        super().__init__(errno.ENOSPC, message)


class StorageReadOnly(StorageError):
    """The data filesystem is (or was remounted) read-only."""

    def __init__(self, message: str = "storage is read-only") -> None:
        super().__init__(errno.EROFS, message)


class StorageWriteError(StorageError):
    """A write or fsync failed (EIO and friends); the recorder must enter its fault state."""


# --- evidence -------------------------------------------------------------------------------
class EvidenceError(BodycamError):
    """Signing, encrypting or logging evidence failed."""


class KeyMissing(EvidenceError, FileNotFoundError):
    """No device key: evidence cannot be signed, so recording is refused."""


class LogCorrupt(EvidenceError):
    """The append-only log on disk is inconsistent beyond a torn final record."""


class VerificationError(EvidenceError):
    """Offline verification found a problem (used by library callers; the CLI reports)."""


class ReceiptRejected(EvidenceError, ValueError):
    """A station receipt was refused (untrusted, forged, or not for a sealed segment here)."""


# --- recorder / control ---------------------------------------------------------------------
class RecorderError(BodycamError, RuntimeError):
    """The recorder state machine could not do what was asked."""


class RecordingRefused(RecorderError):
    """A recording was not started (battery critical, storage cannot hold it, no key)."""


class ClockError(BodycamError):
    """Time could not be established or mapped."""


class MatterError(BodycamError, ValueError):
    """An enforcement matter code or catalogue entry is invalid."""


class SyncError(BodycamError):
    """MQTT sync or the outbox failed."""


class CommandRejected(SyncError, ValueError):
    """A remote or local command was malformed, stale, unknown or not allowed."""
