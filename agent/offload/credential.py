"""Hand a segment's C2PA sidecar to the station after its finalise (STATION-API §4a).

``[evidence] c2pa`` makes the device write ``<stem>.c2pa`` beside each sealed segment
(agent/c2pa). The uploader sends it with ``PUT …/segments/<device_seq>/c2pa`` once the station
holds the segment and before the receipt is logged, so the credential reaches the station
whenever the receipt does (a crash in between: the receipt is fetched again and the sidecar
sent again; the station answers an identical one idempotently).

A credential is an addition, never a condition: a refusal of the credential itself (4xx:
invalid, too large, a station that does not take credentials) is logged and the segment goes on
to its receipt; only the station's own trouble (5xx) or a lost link is raised, so the segment
is retried. Reading is bounded: a sidecar larger than the station's limit is still sent (its
first bytes past the limit), so the station records it ``invalid``, not ``absent``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.evidence.journal import sidecar
from agent.evidence.layout import CREDENTIAL_SUFFIX
from agent.station.api_client import StationClient, StationRefused

__all__ = ["MAX_CREDENTIAL_BYTES", "hand_over_credential"]

MAX_CREDENTIAL_BYTES = 64 << 10  # the station's bound; our credentials are ~4.4 KB

log = logging.getLogger(__name__)


def hand_over_credential(client: StationClient, device_id: str, device_seq: int,
                         media: Path) -> str | None:
    """Send ``media``'s sidecar if it has one; None, or why the station refused it.
    :class:`StationRefused` (5xx) and :class:`StationUnreachable` are raised."""
    path = sidecar(media, CREDENTIAL_SUFFIX)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CREDENTIAL_BYTES + 1)
    except FileNotFoundError:
        return None  # no credential: the station reports the segment's as "absent"
    try:
        answer = client.put_credential(device_id, device_seq, data)
    except StationRefused as exc:
        if exc.status >= 500:
            raise
        log.warning("offload: station refused the Content Credential of segment %d: %s",
                    device_seq, exc)
        return f"segment {device_seq} credential: {exc}"
    log.debug("offload: segment %d credential %s", device_seq,
              (answer.get("c2pa") or {}).get("state"))
    return None
