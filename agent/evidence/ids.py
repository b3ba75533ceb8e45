"""The one rule for a device id, shared by the configuration schema and the evidence store.

A device id names files (``<device>_<utc>_….mp4.age``), the log's checkpoint origin
(``bodycam/v1/<device>``, see :func:`agent.evidence.log.origin_for`), the MQTT topic tree and
receipts. Configuration is checked with this same pattern so that ``bodycam config check``
refuses an id before ``bodycam run`` has generated keys or created a single file for it.

This module imports nothing on purpose: the configuration loader uses it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["DEVICE_ID_PATTERN", "DEVICE_ID_RULE", "is_device_id"]

DEVICE_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$"
DEVICE_ID_RULE: Final = "1-64 letters, digits, '.' or '-', starting with a letter or digit"
_DEVICE_ID: Final = re.compile(DEVICE_ID_PATTERN)


def is_device_id(value: str) -> bool:
    """Whether ``value`` is usable as a device id everywhere it appears."""
    return _DEVICE_ID.fullmatch(value) is not None
