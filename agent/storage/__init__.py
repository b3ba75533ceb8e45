"""Storage policy, eviction planning, write-error classification and telemetry.

``classify_os_error`` lives in :mod:`hw.storage_fs` (drivers raise the same errors) and is
re-exported here for ``agent`` callers.
"""

from agent.storage.eviction import EvictionPlan, SealedSegment, plan_eviction
from agent.storage.space_policy import FULL, OK, WARN, BitrateMeter, StoragePolicy, StorageVerdict
from agent.storage.space_telemetry import storage_telemetry
from hw.storage_fs import classify_os_error

__all__ = [
    "FULL",
    "OK",
    "WARN",
    "BitrateMeter",
    "EvictionPlan",
    "SealedSegment",
    "StoragePolicy",
    "StorageVerdict",
    "classify_os_error",
    "plan_eviction",
    "storage_telemetry",
]
