"""What the device's MQTT link says: the documents it publishes, as bytes, apart from when.

:mod:`agent.sync.link` decides *when* something is sent (which thread, which connection, which
QoS the broker allows); this module decides *what* is sent: the retained status (``online``,
``offline`` on shutdown, and the Last Will's ``connection_lost``), the birth message, telemetry,
the retained state, and the payloads of durable outbox rows (segment envelopes, checkpoints,
events) with their delivery fields, and whether a row can be sent at all under what the broker
granted. Kept apart so the wire contract (``asyncapi.yaml`` and
``schemas/``) can be read and checked in one place, without the threading and paho mechanics.

Everything here is pure apart from reading the wall clock for ``at``/``queued_at``; it holds no
state and takes no lock, so the link calls it from whichever thread it is on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from agent.sync.command_messages import iso_utc
from agent.sync.outbox import OutboxMessage
from agent.sync.session import BrokerGrant, fits, publish_packet_size
from agent.sync.topics import encode_json
from hw.errors import ConfigError, SyncError

__all__ = [
    "birth_payload",
    "checked_birth",
    "checkpoint_body",
    "event_body",
    "now_iso",
    "row_payload",
    "segment_body",
    "state_payload",
    "status_payload",
    "telemetry_payload",
    "unsendable",
    "will_payload",
]

_DELIVERY_FIELDS: Final = frozenset({"device_id", "seq", "outbox_epoch", "queued_at"})
_BIRTH_REQUIRED: Final = ("software", "public_key")


def now_iso() -> str:
    """The wall clock as the ISO-8601 UTC string every document's ``at`` carries."""
    return iso_utc(datetime.now(UTC))


# --- durable rows (the outbox) ----------------------------------------------------------------
def segment_body(manifest_envelope: Mapping[str, Any], device_id: str) -> dict[str, Any]:
    """The body of a segment row: the signed envelope as is, once it is known to be sendable.

    The envelope's keys go to the top level of the payload beside the delivery fields, so the
    back office verifies exactly the object the device wrote beside the segment; an envelope of
    another device, or one using a delivery field's name, is refused (SyncError).
    """
    manifest = manifest_envelope.get("manifest")
    if not isinstance(manifest, Mapping) or not isinstance(
        manifest_envelope.get("signature"), Mapping
    ):
        raise SyncError("segment envelope needs 'manifest' and 'signature' objects")
    if manifest.get("device_id") != device_id:
        raise SyncError(
            f"manifest of device {manifest.get('device_id')!r} cannot be sent as "
            f"{device_id!r}"
        )
    reserved = set(manifest_envelope) & _DELIVERY_FIELDS
    if reserved:
        raise SyncError(f"segment envelope uses reserved key(s) {sorted(reserved)}")
    return dict(manifest_envelope)


def checkpoint_body(note: str, proof: Mapping[str, Any] | None,
                    rotations: Sequence[str] = ()) -> dict[str, Any]:
    """The body of a checkpoint row: the signed note and its consistency proof (or null), and
    -- from a device that rotated its key -- the log's key_rotation entries (base64 of their
    exact bytes), so a monitor that knows only an older key can learn the one that signed."""
    body: dict[str, Any] = {"note": note, "proof": dict(proof) if proof is not None else None}
    if rotations:
        body["rotations"] = list(rotations)
    return body


def event_body(event: Mapping[str, Any]) -> dict[str, Any]:
    """The body of an event row; an event without a string ``type`` is refused (SyncError)."""
    if not isinstance(event.get("type"), str):
        raise SyncError("event needs a string 'type'")
    return {"event": dict(event)}


def row_payload(body: Mapping[str, Any], *, device_id: str,
                epoch: str) -> Callable[[int], bytes]:
    """The payload of a row given the seq the outbox assigns it (the outbox calls this inside
    its transaction): the body beside the delivery fields."""

    def payload(seq: int) -> bytes:
        return encode_json({**body, "device_id": device_id, "seq": seq,
                            "outbox_epoch": epoch, "queued_at": now_iso()})

    return payload


def unsendable(row: OutboxMessage, grant: BrokerGrant) -> str | None:
    """Why ``grant`` does not let ``row`` be published (None if it does): a QoS above the
    broker's Maximum QoS, or a packet above its Maximum Packet Size (the broker would drop
    the connection, and the link would loop); such a row is held in the outbox."""
    if grant.maximum_qos < row.qos:
        return f"broker's Maximum QoS is {grant.maximum_qos}, the row needs {row.qos}"
    if not fits(grant, row.topic, len(row.payload), row.qos):
        size = publish_packet_size(row.topic, len(row.payload), row.qos)
        return (f"{size}-byte packet exceeds the broker's Maximum Packet Size "
                f"{grant.maximum_packet_size}; kept in the outbox")
    return None


# --- status, birth and the latest-only documents ----------------------------------------------
def checked_birth(birth: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the birth fields, refused (ConfigError) without the ones the fleet needs."""
    missing = [key for key in _BIRTH_REQUIRED if not isinstance(birth.get(key), str)]
    if missing:
        raise ConfigError(f"birth message lacks {missing}", key="sync.birth")
    return dict(birth)


def will_payload(device_id: str, session: int) -> bytes:
    """The Last Will the broker publishes as our status if the connection is lost (no time:
    the broker sends it, not us)."""
    will = {"state": "offline", "session": session, "device_id": device_id,
            "cause": "connection_lost", "at": None}
    return encode_json(will)


def status_payload(device_id: str, session: int, *, online: bool) -> bytes:
    """The retained status we publish ourselves: ``online`` on connect, ``offline`` with cause
    ``shutdown`` on a clean stop."""
    if online:
        doc: dict[str, Any] = {"state": "online", "session": session, "device_id": device_id,
                               "at": now_iso()}
    else:
        doc = {"state": "offline", "session": session, "device_id": device_id,
               "cause": "shutdown", "at": now_iso()}
    return encode_json(doc)


def birth_payload(birth: Mapping[str, Any], device_id: str, session: int) -> bytes:
    """The retained birth message for one connection (software, public key, …)."""
    return encode_json({**birth, "device_id": device_id, "session": session, "at": now_iso()})


def telemetry_payload(telemetry: Mapping[str, Any], device_id: str, outbox_depth: int) -> bytes:
    """A telemetry report with who, when and how much is waiting in the outbox."""
    return encode_json({**telemetry, "device_id": device_id, "at": now_iso(),
                        "outbox_depth": outbox_depth})


def state_payload(state: Mapping[str, Any], device_id: str) -> bytes:
    """The retained state snapshot with who and when."""
    return encode_json({**state, "device_id": device_id, "at": now_iso()})
