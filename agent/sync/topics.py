"""The topic tree ``bodycam/v1/<device_id>/…`` and the JSON encoding every payload uses."""

from __future__ import annotations

import json
import re
from typing import Any, Final

from hw.errors import ConfigError

__all__ = ["PREFIX", "Topics", "check_device_id", "encode_json"]

PREFIX: Final = "bodycam/v1"
_DEVICE_ID_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_device_id(device_id: str) -> str:
    """Return ``device_id`` if it can be one topic level and a certificate CN, else raise."""
    if not _DEVICE_ID_RE.fullmatch(device_id):
        raise ConfigError(
            f"{device_id!r} must be 1-64 characters of [A-Za-z0-9._-], starting alphanumeric",
            key="device.id",
        )
    return device_id


class Topics:
    """Topic names for one device."""

    def __init__(self, device_id: str) -> None:
        self.device_id = check_device_id(device_id)
        base = f"{PREFIX}/{device_id}"
        self.base = base
        self.status = f"{base}/status"
        self.birth = f"{base}/birth"
        self.telemetry = f"{base}/telemetry"
        self.state = f"{base}/state"
        self.segment = f"{base}/segment"
        self.checkpoint = f"{base}/checkpoint"
        self.event = f"{base}/event"
        self.commands = f"{base}/cmd/+"

    def command_name(self, topic: str) -> str | None:
        """The ``<name>`` of a ``cmd/<name>`` topic of this device, else None."""
        prefix = f"{self.base}/cmd/"
        if not topic.startswith(prefix):
            return None
        name = topic[len(prefix) :]
        return name if name and "/" not in name else None

    def ack(self, name: str) -> str:
        """Where the acknowledgement of ``cmd/<name>`` goes."""
        return f"{self.base}/cmd/{name}/ack"


def encode_json(doc: Any) -> bytes:
    """Compact, key-sorted UTF-8 JSON (stable bytes for the same content)."""
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()
