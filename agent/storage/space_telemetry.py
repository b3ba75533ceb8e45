"""Storage telemetry: a flat, JSON-ready dict for the MQTT ``telemetry`` topic and status line.

Ints, strings and bools only (see :mod:`agent.power.battery_telemetry` for why): sizes in bytes,
bitrate in whole bytes per second, recording time left in whole seconds.
"""

from __future__ import annotations

from agent.storage.space_policy import StorageVerdict
from hw.storage import StorageReading

__all__ = ["storage_telemetry"]


def storage_telemetry(
    reading: StorageReading,
    verdict: StorageVerdict | None = None,
    *,
    bitrate_measured: bool | None = None,
    fault: str | None = None,
) -> dict[str, int | str | bool]:
    """Flatten a reading and its verdict into ``storage_*`` keys.

    ``fault`` is the last write error class (``StorageFull``, ``StorageReadOnly``,
    ``StorageWriteError``) when the recorder is in its storage fault state.
    """
    out: dict[str, int | str | bool] = {
        "storage_total_bytes": reading.total_bytes,
        "storage_free_bytes": reading.free_bytes,
        "storage_read_only": reading.read_only,
    }
    if verdict is not None:
        out["storage_level"] = verdict.level
        out["storage_reasons"] = ",".join(verdict.reasons)
        out["storage_reserve_bytes"] = verdict.reserve_bytes
        out["storage_recording_s"] = verdict.recording_s
        out["storage_bitrate_bps"] = round(verdict.bitrate_bps)
    if bitrate_measured is not None:
        out["storage_bitrate_measured"] = bitrate_measured
    if fault:
        out["storage_fault"] = fault
    return out
