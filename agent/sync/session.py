"""What the broker granted in its CONNACK, and the rules the link follows to stay within it.

An MQTT v5 broker may grant less than the device asked for, and says so only in the CONNACK
properties (MQTT 5.0 §3.2.2.3): a shorter Session Expiry Interval (ejabberd cuts a day to five
minutes by default: commands for a unit offline longer are lost), a Receive Maximum below our
in-flight window, a Server Keep Alive, a Maximum QoS, no retained messages, a Maximum Packet
Size, no shared subscriptions. An absent property means the protocol default, which these
functions fill in so every later rule reads one complete :class:`BrokerGrant`.

Everything here is pure (no I/O, no clock, no threads): the link calls it once per CONNACK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

__all__ = [
    "BrokerGrant",
    "SessionRequest",
    "client_inflight_limit",
    "fits",
    "inflight_window",
    "publish_packet_size",
    "read_grant",
    "shortfalls",
]

_RECEIVE_MAXIMUM_DEFAULT: Final = 65535
_MAX_REMAINING_LENGTH: Final = 268_435_455  # the largest a 4-byte variable integer encodes


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """What the device asked for in its CONNECT."""

    session_expiry_s: int
    keepalive_s: int
    max_inflight: int


@dataclass(frozen=True, slots=True)
class BrokerGrant:
    """The broker's side of the session, with MQTT v5 defaults for absent properties."""

    session_present: bool
    session_expiry_s: int
    keepalive_s: int
    receive_maximum: int
    maximum_qos: int
    retain_available: bool
    maximum_packet_size: int | None  # None: no limit beyond the protocol's
    topic_alias_maximum: int
    shared_subscriptions: bool
    wildcard_subscriptions: bool
    assigned_client_id: str | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for status and telemetry (absent values left out, never null)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def qos(self, wanted: int) -> int:
        """The QoS to publish with: ``wanted``, capped by the broker's Maximum QoS."""
        return min(wanted, self.maximum_qos)


def read_grant(props: Mapping[str, Any], *, request: SessionRequest,
               session_present: bool) -> BrokerGrant:
    """Build the grant from CONNACK properties as paho names them (``Properties.json()``)."""

    def num(name: str, default: int) -> int:
        value = props.get(name, default)
        return value if isinstance(value, int) and not isinstance(value, bool) else default

    def flag(name: str) -> bool:
        return bool(num(name, 1))

    packet_max = props.get("MaximumPacketSize")
    assigned = props.get("AssignedClientIdentifier")
    return BrokerGrant(
        session_present=session_present,
        session_expiry_s=num("SessionExpiryInterval", request.session_expiry_s),
        keepalive_s=num("ServerKeepAlive", request.keepalive_s),
        receive_maximum=num("ReceiveMaximum", _RECEIVE_MAXIMUM_DEFAULT),
        maximum_qos=num("MaximumQoS", 2),
        retain_available=flag("RetainAvailable"),
        maximum_packet_size=packet_max if isinstance(packet_max, int) and packet_max > 0 else None,
        topic_alias_maximum=num("TopicAliasMaximum", 0),
        shared_subscriptions=flag("SharedSubscriptionAvailable"),
        wildcard_subscriptions=flag("WildcardSubscriptionAvailable"),
        assigned_client_id=assigned if isinstance(assigned, str) else None,
    )


def shortfalls(request: SessionRequest, grant: BrokerGrant) -> list[str]:
    """One sentence for each thing the broker granted below what the device asked or needs."""
    out = []
    if grant.session_expiry_s < request.session_expiry_s:
        out.append(f"session expiry cut from {request.session_expiry_s} s to "
                   f"{grant.session_expiry_s} s: commands sent while the unit is offline "
                   "longer are lost")
    if grant.keepalive_s != request.keepalive_s:
        out.append(f"keep-alive set to {grant.keepalive_s} s (asked {request.keepalive_s} s)")
    if grant.receive_maximum < request.max_inflight:
        out.append(f"receive maximum {grant.receive_maximum} is below max_inflight "
                   f"{request.max_inflight}: the in-flight window shrinks to match")
    if grant.maximum_qos < 1:
        out.append("maximum QoS 0: nothing can be delivered with an acknowledgement; the outbox "
                   "keeps everything until a broker that allows QoS 1")
    if not grant.retain_available:
        out.append("retained messages unavailable: status, birth and state are published "
                   "without retain, so a late subscriber does not see them")
    return out


def inflight_window(max_inflight: int, grant: BrokerGrant) -> int:
    """Outbox rows in flight at once: ours, but never above the broker's Receive Maximum."""
    return max(1, min(max_inflight, grant.receive_maximum))


def client_inflight_limit(window: int, extra: int, grant: BrokerGrant) -> int:
    """paho's own cap (outbox rows plus status/birth/state/acks), within Receive Maximum.

    paho queues whatever exceeds it in memory and sends it when a PUBACK frees a slot, so the
    broker never sees more unacknowledged QoS 1 messages than it allowed.
    """
    return max(1, min(window + extra, grant.receive_maximum))


def _varint_len(n: int) -> int:
    size = 1
    while n > 127:
        n //= 128
        size += 1
    return size


def publish_packet_size(topic: str, payload_len: int, qos: int) -> int:
    """Bytes of a v5 PUBLISH without properties: what Maximum Packet Size limits (§3.1.2.11.4)."""
    variable = 2 + len(topic.encode()) + (2 if qos > 0 else 0) + 1  # topic, packet id, props len
    remaining = variable + payload_len
    return 1 + _varint_len(min(remaining, _MAX_REMAINING_LENGTH)) + remaining


def fits(grant: BrokerGrant, topic: str, payload_len: int, qos: int) -> bool:
    """Whether the broker accepts this PUBLISH (a bigger one makes it drop the connection)."""
    limit = grant.maximum_packet_size
    return limit is None or publish_packet_size(topic, payload_len, qos) <= limit
