"""The agent's side of fleet sync: what goes out over MQTT, and what comes in.

Out: every sealed segment's signed manifest, then the log checkpoint with a consistency proof
from the previous published one (so the back office, as a witness, can check the log only
grew); events (bookmarks, faults, warnings, matter changes); telemetry every
``mqtt.telemetry_s`` and whenever the recorder's state changes; the retained ``state``.
Everything evidential goes through the durable outbox before it is published.

In: ``cmd/*`` messages, already validated by :mod:`agent.sync.command_messages`, become controller
requests -- the same handlers the button and ``bodycam ctl`` use, carrying the command id and
its claimed issuer as their origin for the evidence log -- and their results become the
command's ack (succeeded / failed with the reason).

Threading: ``_on_command`` runs on the link thread and only submits; everything else runs
on the controller thread. The link itself is thread-safe.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import __version__
from agent.atomic import atomic_write
from agent.config import DeviceConfig, MqttConfig, read_secret_file
from agent.evidence.canonical import parse_canonical
from agent.evidence.journal import MANIFEST_SUFFIX, sidecar
from agent.evidence.keys import DeviceKey
from agent.evidence.log import origin_for
from agent.evidence.manifest import SignedManifest, parse_envelope
from agent.evidence.proof import log_inclusion
from agent.ports import EvidenceOps, HardwareFacts
from agent.recording.controller import Request
from agent.sync.command_messages import Command, iso_utc
from agent.sync.link import MqttLink
from agent.sync.outbox import Outbox
from agent.sync.transport import TlsSettings
from hw.errors import EvidenceError, SyncError

__all__ = ["FleetSync"]

log = logging.getLogger(__name__)

_EVENTS = frozenset({
    "recording_started", "recording_stopped", "recording_refused", "bookmark", "fault",
    "battery", "storage", "camera_stall", "microphone_stall", "camera_failed",
    "microphone_failed", "matter", "storage_recovered",
    "clock_step", "still",
})
_TELEMETRY_SCALARS = (int, float, str, bool)
# The retained ``state`` message: what a fleet manager's table shows for a unit.
_STATE_KEYS = ("state", "recording_id", "fault", "officer_id", "profile", "matter",
               "battery_level", "storage_level", "segments_sealed", "log_size")
# A change in any of these republishes it at once: everything shown except the two counters
# that move with every sealed segment (they follow with the next change or telemetry period).
# A matter or officer chosen on the unit must reach the console now, not at the next press.
_STATE_CHANGES = tuple(k for k in _STATE_KEYS if k not in ("segments_sealed", "log_size"))


def _cpu_temp_dc(path: Path = Path("/sys/class/thermal/thermal_zone0/temp")) -> int | None:
    try:
        return int(path.read_text().strip()) // 100
    except (OSError, ValueError):
        return None


def _model(path: Path = Path("/proc/device-tree/model")) -> str:
    try:
        return path.read_text(errors="replace").strip("\x00 \n")[:128]
    except OSError:
        return "simulator"


class FleetSync:
    """Connects one recorder to the back office through an :class:`MqttLink`.

    ``submit`` hands a command to the controller (the same queue the button and ``bodycam
    ctl`` use); ``officer_id`` is who carries the unit at start, announced in the birth message.
    """

    def __init__(self, cfg: MqttConfig, *, device: DeviceConfig, officer_id: str,
                 data_dir: Path, store: EvidenceOps, key: DeviceKey, hardware: HardwareFacts,
                 submit: Callable[[Request], object]) -> None:
        self._device = device
        self._officer_id = officer_id
        self._data_dir = Path(data_dir)
        self._store = store
        self._key = key
        self._hardware = hardware
        self._submit = submit
        self._telemetry_s: float = cfg.telemetry_s
        tls = None
        if cfg.url.startswith("mqtts://"):
            tls = TlsSettings(Path(cfg.cafile), Path(cfg.certfile) if cfg.certfile else None,
                              Path(cfg.keyfile) if cfg.keyfile else None)
            tls.check()
        password = (read_secret_file(cfg.password_file, key="mqtt.password_file")
                    if cfg.password_file else None)
        self.outbox = Outbox(self._data_dir / "state" / "outbox.sqlite")
        self.link = MqttLink(
            device_id=device.id, outbox=self.outbox, url=cfg.url, tls=tls,
            client_id=cfg.client_id or None, username=cfg.username or None, password=password,
            allow_plaintext=cfg.allow_plaintext, keepalive=cfg.keepalive_s,
            max_inflight=cfg.max_inflight, on_command=self._on_command, birth=self._birth(),
            on_delivery_fault=self._delivery_fault,
        )
        self._cp_state = self._data_dir / "state" / "published-checkpoint.json"
        self._published_size = self._load_published_size()
        self._next_telemetry = 0.0
        self._last_state: tuple[Any, ...] | None = None
        self.delivery_faults = 0
        # A manifest that could not be queued (a full or failing outbox) leaves the published
        # size behind it; the next seal then queues everything after that size, this one too.
        self._behind = False
        try:
            self._send_unpublished()
        except SyncError as exc:
            self._behind = True
            log.error("segments logged while offline not queued yet (%s); retried at the next "
                      "seal", exc)

    def _birth(self) -> dict[str, Any]:
        hw, device = self._hardware, self._device
        v = hw.video
        return {
            "software": f"bodycam-agent {__version__}",
            "public_key": self._key.public_b64,
            "key_name": origin_for(device.id),
            "key_fingerprint": self._key.fingerprint,
            "model": _model(),
            "hardware": {"kind": hw.kind, "profile": device.profile,
                         "video": f"{v.width}x{v.height}@{v.fps}" if v else None},
            "capabilities": list(hw.capabilities),
            "unit": device.unit,
            "officer_id": self._officer_id,
        }

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; publishes birth/status itself."""
        self.link.start()

    def stop(self) -> None:
        """Publish ``offline`` and disconnect (the outbox keeps what is undelivered)."""
        self.link.stop()
        self.outbox.close()

    # --- out --------------------------------------------------------------------------------
    def set_telemetry_period(self, seconds: float) -> None:
        """Telemetry every ``seconds`` from the next report on (live ``mqtt.telemetry_s``)."""
        self._telemetry_s = seconds

    def segment_sealed(self, signed: SignedManifest) -> None:
        """Queue the manifest, then the checkpoint that now covers it.

        If an earlier manifest could not be queued, every segment logged since the last
        published checkpoint is queued instead (this one included), so a failing outbox
        delays manifests but never loses one. Raises :class:`SyncError` when queuing fails
        (the caller's side-channel guard logs and counts it; the seal stands)."""
        if self._behind:
            self._behind = False
            try:
                self._send_unpublished()
            except SyncError:
                self._behind = True
                raise
            return
        envelope = json.loads(signed.envelope())
        try:
            self.link.enqueue_segment(self._with_inclusion(envelope))
        except SyncError:
            self._behind = True
            raise
        self.publish_checkpoint()

    def _send_unpublished(self) -> None:
        """Queue every segment logged since the last published checkpoint, then a checkpoint.

        Sealing logs a segment and only then queues its manifest: a power cut in between, or a
        segment sealed by crash recovery at start (before this link exists), would otherwise
        never reach the back office. Segments after the published size are queued through the
        same path as a fresh seal. One that was queued already just before a cut goes out a
        second time, as a new outbox message carrying the same signed manifest (same
        ``device_seq``, same hash): a duplicate the back office can recognise, where a missing
        manifest would be a gap it cannot fill.
        """
        log_ = self._store.log
        if self._published_size >= log_.size:
            return
        queued = 0
        for index, data in log_.entries():
            if index < self._published_size:
                continue
            entry = parse_canonical(data)
            if entry.get("kind") != "segment":
                continue
            envelope = self._logged_envelope(entry)
            if envelope is None:
                continue
            self.link.enqueue_segment(self._with_inclusion(envelope))
            queued += 1
        if queued:
            log.info("queued %d segment(s) logged since the last published checkpoint", queued)
            self.publish_checkpoint()

    def _logged_envelope(self, entry: dict[str, Any]) -> dict[str, Any] | None:
        """The signed manifest a segment leaf names, if it is on disk and matches its hash."""
        media = self._data_dir / str(entry.get("path", ""))
        try:
            signed = parse_envelope(sidecar(media, MANIFEST_SUFFIX).read_bytes())
        except (OSError, EvidenceError) as exc:
            log.error("segment %s: manifest not queued, unreadable (%s)", entry.get("path"), exc)
            return None
        if signed.sha256 != entry.get("manifest_sha256"):
            log.error("segment %s: manifest not queued, its hash differs from the log's",
                      entry.get("path"))
            return None
        envelope: dict[str, Any] = json.loads(signed.envelope())
        return envelope

    def _with_inclusion(self, envelope: dict[str, Any]) -> dict[str, Any]:
        """Add the manifest's inclusion proof against the current signed checkpoint, so the
        back office can show the segment is in the log, not only that the log grew."""
        index = self._store.leaf_index(int(envelope["manifest"]["device_seq"]))
        if index is None:
            return envelope
        try:
            return {**envelope, "inclusion": log_inclusion(self._store.log, index)}
        except (OSError, EvidenceError, ValueError) as exc:
            log.error("segment %s: sent without its inclusion proof (%s)",
                      envelope["manifest"]["device_seq"], exc)
            return envelope

    def publish_checkpoint(self) -> dict[str, Any]:
        """Queue the current signed checkpoint with a consistency proof from the last one."""
        log_ = self._store.log
        size = log_.size
        proof = None
        if 0 < self._published_size <= size:
            hashes = log_.consistency_proof(self._published_size, size)
            proof = {"old_size": self._published_size, "new_size": size,
                     "hashes": [base64.b64encode(h).decode() for h in hashes]}
        note = log_.checkpoint().decode()
        # the log's key rotations ride along, so a monitor knowing an older key can follow
        rotations = [base64.b64encode(e).decode() for e in self._store.key_rotations()[-32:]]
        self.link.enqueue_checkpoint(note, proof, rotations)
        self._published_size = size
        try:
            atomic_write(self._cp_state, json.dumps({"size": size}).encode())
        except OSError as exc:  # kept in memory; the file is rewritten at the next checkpoint
            log.error("published checkpoint size not saved (%s); rewritten at the next "
                      "checkpoint", exc)
        return {"size": size, "proof_from": proof["old_size"] if proof else None}

    def event(self, kind: str, data: dict[str, Any]) -> None:
        """Queue an event the back office should see (controller thread)."""
        if kind not in _EVENTS:
            return
        body = {"type": kind, **{k: v for k, v in data.items() if _jsonable(v)}}
        try:
            self.link.enqueue_event(body)
        except SyncError as exc:
            log.error("event %s not queued: %s", kind, exc)

    def tick(self, now: float, snapshot: dict[str, Any]) -> None:
        """Telemetry on its period and on a state change; retained state on change."""
        key = tuple(snapshot.get(k) for k in _STATE_CHANGES)
        changed = key != self._last_state
        if changed:
            self._last_state = key
            self.link.publish_state(self._state(snapshot))
        if changed or now >= self._next_telemetry:
            self._next_telemetry = now + self._telemetry_s
            self.link.publish_telemetry(self._telemetry(snapshot))

    def status(self) -> dict[str, Any]:
        """``mqtt_*`` fields for the status snapshot."""
        st = self.link.stats()
        out: dict[str, Any] = {
            "mqtt_connected": st.connected, "mqtt_commands_ready": st.commands_ready,
            "outbox_depth": st.outbox_depth, "mqtt_delivery_faults": st.faults,
            "mqtt_session": st.session}
        if st.broker is not None:  # what the broker granted at the last CONNACK
            out["mqtt_broker"] = st.broker.as_dict()
        return out

    def _telemetry(self, s: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in s.items()
                               if isinstance(v, _TELEMETRY_SCALARS) and not k.startswith("mqtt_")
                               and k not in ("data_dir", "outbox_depth", "state")}
        out["recording"] = s.get("state") == "recording"
        out["recorder_state"] = s.get("state", "unknown")
        out["gps_fix"] = s.get("gps_mode", 0) >= 2
        out["last_checkpoint_size"] = self._published_size
        broker = self.link.stats().broker
        if broker is not None:
            out["broker"] = broker.as_dict()
        temp = _cpu_temp_dc()
        if temp is not None:
            out["cpu_temp_dc"] = temp
        err = out.get("clock_error_ms")
        if isinstance(err, int) and err < 0:
            del out["clock_error_ms"]
        return out

    def _state(self, s: dict[str, Any]) -> dict[str, Any]:
        return {k: s[k] for k in _STATE_KEYS if s.get(k) is not None}

    def _load_published_size(self) -> int:
        try:
            return int(json.loads(self._cp_state.read_bytes())["size"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def _delivery_fault(self, seq: int, reason: str) -> None:
        self.delivery_faults += 1
        log.error("broker refused outbox message %d: %s", seq, reason)

    # --- in ---------------------------------------------------------------------------------
    def _on_command(self, cmd: Command) -> None:
        """Link thread: hand a validated command to the controller; ack when it answers."""
        name, args = cmd.name, dict(cmd.args)
        if name == "matter" and args.get("scope") == "next":
            args.pop("scope")
        if name == "bookmark" and "checklist_item" in args:
            args["item"] = args.pop("checklist_item")

        def done(req: Request) -> None:
            if req.error is not None:
                cmd.fail(req.error)
            else:
                cmd.succeed(req.result)

        # Who asked, as far as the device can know: recorded with the command in the log.
        detail = {"command_id": cmd.id, "issuer": cmd.issuer, "issued_at": iso_utc(cmd.issued_at)}
        self._submit(Request(name, args, origin="mqtt", on_done=done,
                                         origin_detail=detail))


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
    except (TypeError, ValueError):
        return False
    return True
