"""MQTT sync, the device's side: the durable outbox, the MQTT v5 link, remote commands, what goes
out and what comes in (:mod:`agent.sync.fleet_sync`).

The back office's view of the fleet (``bodycam fleet watch``) is not here: it lives with the
station, in :mod:`agent.station.fleetwatch`.

Wiring, in one place (the agent's controller owns the Outbox and the link)::

    outbox = Outbox(data_dir / "sync" / "outbox.sqlite")
    link = MqttLink(device_id=..., outbox=outbox, url="mqtts://broker:8883",
                    tls=TlsSettings(ca, cert, key), birth={...}, on_command=queue.put)
    link.start()
    link.enqueue_segment(envelope); link.publish_telemetry({...})
    ...
    link.stop()

See ``asyncapi.yaml`` beside this file for the topics and ``schemas/`` for the payloads.
"""

from agent.sync.command_messages import DEFAULT_CONFIG_ALLOWLIST, Command, ConfigKey
from agent.sync.link import LinkStats, MqttLink
from agent.sync.outbox import Outbox, OutboxMessage
from agent.sync.transport import TlsSettings

__all__ = [
    "DEFAULT_CONFIG_ALLOWLIST",
    "Command",
    "ConfigKey",
    "LinkStats",
    "MqttLink",
    "Outbox",
    "OutboxMessage",
    "TlsSettings",
]
