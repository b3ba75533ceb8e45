"""One validated configuration schema for the recorder.

The file format is TOML. Every section is a frozen dataclass whose fields carry their rule
(type, range, choices, pattern) in ``metadata``; :func:`load_config` walks the TOML, rejects
unknown keys, coerces nothing silently, and raises :class:`ConfigError` naming the key, the
value and what is allowed. Keeping the rules next to the defaults means the schema, the
defaults and the error messages can never drift apart.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.errors import ConfigError, EvidenceError
from agent.evidence.ids import DEVICE_ID_PATTERN

__all__ = [
    "AudioConfig",
    "Config",
    "DeviceConfig",
    "EvidenceConfig",
    "GpioConfig",
    "GpsConfig",
    "HardwareConfig",
    "MattersConfig",
    "MqttConfig",
    "NightConfig",
    "OffloadConfig",
    "PowerConfig",
    "RecordingConfig",
    "SimConfig",
    "StorageConfig",
    "TimeConfig",
    "TriggerConfig",
    "VideoConfig",
    "WitnessConfig",
    "load_config",
    "parse_config",
    "read_secret_file",
    "station_public_keys",
]


def rule(
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] | None = None,
    pattern: str | None = None,
) -> dict[str, Any]:
    """Field metadata: a one-line meaning plus the constraint checked on load."""
    return {"doc": doc, "lo": lo, "hi": hi, "choices": choices, "pattern": pattern}


def _f(default: Any, doc: str, **kw: Any) -> Any:
    """A scalar field with its rule."""
    return field(default=default, metadata=rule(doc, **kw))


@dataclass(frozen=True)
class DeviceConfig:
    """Who and what this recorder is; goes into every manifest and the overlay."""

    # The evidence store's rule (agent.evidence.ids), so config check refuses what run would.
    id: str = _f("BC-SIM-0001", "device id (also the MQTT identity)", pattern=DEVICE_ID_PATTERN)
    officer_id: str = _f("", "officer carrying the unit; empty = unassigned", pattern=r"^.{0,64}$")
    unit: str = _f("", "enforcement unit (department) name", pattern=r"^.{0,128}$")
    profile: str = _f(
        "body", "recorder profile", choices=("body", "audio", "stills", "fixed")
    )


@dataclass(frozen=True)
class HardwareConfig:
    """Which hardware set to build; ``auto`` picks ``pi`` on a Raspberry Pi, else ``sim``."""

    kind: str = _f("auto", "hardware set", choices=("auto", "sim", "pi"))
    memory_mb: int = _f(0, "board RAM in MiB, for the pre-roll memory check; 0 = not checked",
                        lo=0, hi=1_048_576)


@dataclass(frozen=True)
class RecordingConfig:
    """Pre-event buffer, segmenting and the button's gestures."""

    prerecord_s: int = _f(30, "seconds of pre-event buffer", lo=0, hi=120)
    prerecord_audio: bool = _f(True, "keep audio in the pre-event buffer too")
    segment_s: int = _f(60, "segment length; rolls at the first keyframe after it", lo=2, hi=3600)
    sync_interval_s: float = _f(1.0, "longest time between fsyncs of an open segment", lo=0.1, hi=10)
    stop_hold_s: float = _f(2.0, "hold this long to stop (a knock must not stop evidence)", lo=0.5, hi=10)
    double_press_s: float = _f(0.5, "max gap between the presses of a double press", lo=0.1, hi=2)
    reminder_s: int = _f(120, "vibrate/beep reminder period while recording; 0 = off", lo=0, hi=3600)
    stall_after_s: float = _f(2.0, "frame-progress watchdog: no frame this long = stalled", lo=0.5, hi=30)


@dataclass(frozen=True)
class VideoConfig:
    """Encoded stream parameters (Art. 7(1): high definition)."""

    width: int = _f(1920, "picture width", lo=160, hi=4096)
    height: int = _f(1080, "picture height", lo=120, hi=2160)
    fps: int = _f(30, "frames per second", lo=1, hi=60)
    bitrate: int = _f(8_000_000, "H.264 bitrate in bit/s", lo=100_000, hi=50_000_000)
    gop: int = _f(30, "frames between keyframes (sets pre-roll and roll granularity)", lo=1, hi=300)
    overlay: bool = _f(True, "burn UTC time, device id and officer id into the picture")


@dataclass(frozen=True)
class AudioConfig:
    """Microphone capture and its AAC encoding."""

    enabled: bool = _f(True, "record audio")
    sample_rate: int = _f(48_000, "capture rate in Hz", lo=8_000, hi=96_000)
    channels: int = _f(1, "capture channels", lo=1, hi=2)
    bitrate: int = _f(96_000, "AAC bitrate in bit/s", lo=16_000, hi=320_000)
    # fast: a third of twoloop's CPU and better speech PESQ at 48-96 kb/s (docs/PERFORMANCE.md).
    aac_coder: str = _f("fast", "libavcodec AAC coder", choices=("fast", "twoloop"))
    chunk_ms: int = _f(100, "capture chunk length in ms (fewer wake-ups when longer)", lo=5, hi=500)
    device: str = _f("", "PortAudio input device name (substring); empty = default input")


@dataclass(frozen=True)
class GpioConfig:
    """BCM pin numbers of the button and indicators; 0 means 'not fitted'."""

    button: int = _f(17, "record button (to GND, internal pull-up)", lo=0, hi=27)
    led_recording: int = _f(27, "red LED: recording", lo=0, hi=27)
    led_standby: int = _f(22, "green LED: buffering / ready", lo=0, hi=27)
    led_fault: int = _f(23, "amber LED: fault or warning", lo=0, hi=27)
    buzzer: int = _f(24, "active buzzer", lo=0, hi=27)
    vibration: int = _f(25, "vibration motor (through a transistor)", lo=0, hi=27)


@dataclass(frozen=True)
class TriggerConfig:
    """One activation input (``[[triggers]]``): a holster switch, a light-bar relay, a door.

    Commercial recorders start on such signals because in the moments that matter nobody
    remembers the button. A trigger starts (or bookmarks); it never stops a recording.
    """

    name: str = _f("trigger", "what the input is (recorded as the cause)",
                   pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    pin: int = _f(0, "BCM input pin", lo=1, hi=27)
    pull: str = _f("up", "internal pull resistor", choices=("up", "down", "none"))
    active_high: bool = _f(False, "the input is active when the pin reads high")
    debounce_ms: int = _f(50, "the level must hold this long to count", lo=0, hi=10_000)
    action: str = _f("start", "what activation does",
                     choices=("start", "start_matter", "bookmark"))
    matter: str = _f("", "matter assigned by a start_matter trigger", pattern=r"^.{0,64}$")


@dataclass(frozen=True)
class WitnessConfig:
    """One witness of the device's log (``[[witnesses]]``), any C2SP tlog-witness.

    A device signing its own log proves nothing against the device; a witness cosigns a
    checkpoint only if it extends what it cosigned before, so a rewritten history shows.
    """

    url: str = _f("", "witness submission URL: http(s)://host[:port][/prefix]",
                  pattern=r"^https?://[^\s/]{1,255}(/\S{0,255})?$")
    vkey: str = _f("", "the witness's verifier key: name+keyid+base64 (C2SP signed-note)",
                   pattern=r"^[^\s+]{1,256}\+[0-9a-f]{8}\+[A-Za-z0-9+/]{1,100}={0,2}$")
    timeout_s: float = _f(10.0, "seconds to wait for one witness answer", lo=1, hi=120)
    cafile: str = _f("", "CA of an https witness's certificate (empty = the system's)")
    certfile: str = _f("", "client certificate for a witness that requires one (a collection "
                       "station: the device's agency certificate)")
    keyfile: str = _f("", "its key")


@dataclass(frozen=True)
class NightConfig:
    """Infrared night vision (seed Art. 7): IR illuminator and IR-cut filter on GPIO outputs,
    switched on the camera's light estimate with hysteresis so it never flaps."""

    ir_led_pin: int = _f(0, "IR illuminator output; 0 = not fitted", lo=0, hi=27)
    ircut_pin: int = _f(0, "IR-cut filter output (high = filter out, night); 0 = not fitted",
                        lo=0, hi=27)
    on_lux: float = _f(5.0, "switch to night below this many lux", lo=0, hi=100_000)
    off_lux: float = _f(20.0, "switch back to day above this many lux", lo=0, hi=100_000)
    min_dwell_s: float = _f(10.0, "stay at least this long in a mode before switching again",
                            lo=0, hi=3600)


@dataclass(frozen=True)
class GpsConfig:
    """GNSS receiver."""

    source: str = _f("serial", "where fixes come from", choices=("serial", "gpsd", "none"))
    port: str = _f("/dev/serial0", "serial port of the receiver")
    baud: int = _f(9600, "serial baud rate", lo=1200, hi=921_600)
    gpsd_host: str = _f("127.0.0.1", "gpsd host")
    gpsd_port: int = _f(2947, "gpsd TCP port", lo=1, hi=65535)
    stale_after_s: float = _f(5.0, "a fix older than this is stale", lo=1, hi=600)


@dataclass(frozen=True)
class TimeConfig:
    """Clock trust."""

    step_threshold_ms: int = _f(
        500, "a jump of UTC vs monotonic beyond this is a clock step", lo=10, hi=3_600_000
    )
    trusted_error_ms: int = _f(1000, "estimated error above this = untrusted clock", lo=1, hi=3_600_000)


@dataclass(frozen=True)
class PowerConfig:
    """Battery source and policy thresholds (minutes of recording left)."""

    source: str = _f(
        "auto", "battery source", choices=("auto", "sysfs", "ina219", "pisugar", "none")
    )
    sysfs_root: str = _f("/sys/class/power_supply", "power_supply root (tests point it elsewhere)")
    battery_name: str = _f("", "power_supply name; empty = first battery found")
    i2c_bus: int = _f(1, "I2C bus of an INA219", lo=0, hi=20)
    ina219_address: int = _f(0x40, "INA219 I2C address", lo=0x40, hi=0x4F)
    pisugar_socket: str = _f("", "pisugar-server Unix socket; empty = its TCP port (the unit's "
                             "private /tmp hides /tmp/pisugar-server.sock)")
    pisugar_port: int = _f(8423, "pisugar-server TCP port on 127.0.0.1", lo=1, hi=65535)
    warn_min: float = _f(15.0, "warn with this many minutes of recording left", lo=1, hi=240)
    critical_min: float = _f(3.0, "seal and stop with this many minutes left", lo=0.5, hi=60)
    undervoltage_grace_s: float = _f(10.0, "persisting undervoltage = critical after this", lo=0, hi=300)
    poll_s: float = _f(5.0, "how often the battery is read", lo=0.2, hi=120)
    pack_wh: float = _f(0.0, "pack energy when full, for gauges that report only a percent; 0 = unknown",
                        lo=0, hi=1000)
    nominal_recording_w: float = _f(4.0, "draw while recording, until one is measured", lo=0.1, hi=100)


@dataclass(frozen=True)
class StorageConfig:
    """Evidence storage policy."""

    warn_min: float = _f(60.0, "warn with this many minutes of recording space left", lo=1, hi=10_000)
    reserve_segments: int = _f(2, "segments' worth of space kept free, the open one included", lo=1, hi=20)
    min_retention_h: float = _f(24.0, "acknowledged segments are kept at least this long", lo=0, hi=87_600)
    poll_s: float = _f(2.0, "how often free space is checked", lo=0.2, hi=120)


@dataclass(frozen=True)
class EvidenceConfig:
    """Signing and encryption at rest."""

    encrypt: bool = _f(True, "encrypt media at rest (age v1); turning it off is recorded")
    recipients: list[str] = field(default_factory=list, metadata=rule("agency age recipients (age1...)"))
    origin: str = _f("", "checkpoint origin line; empty = bodycam/v1/<device id>")
    c2pa: bool = _f(False, "issue C2PA Content Credentials (<stem>.c2pa, signed with keys/c2pa.key "
                    "and keys/c2pa.crt) for every sealed segment")
    c2pa_test_ca: bool = _f(False, "simulator and benches only: without keys/c2pa.crt, make a "
                            "throw-away test CA under state/ and issue the certificate from it")


@dataclass(frozen=True)
class MqttConfig:
    """Fleet sync."""

    enabled: bool = _f(False, "sync with the back office over MQTT")
    url: str = _f("mqtts://localhost:8883", "broker URL (mqtts:// or, explicitly allowed, mqtt://)")
    allow_plaintext: bool = _f(False, "allow mqtt:// without TLS (test benches only)")
    cafile: str = _f("", "CA bundle for the broker")
    certfile: str = _f("", "device client certificate")
    keyfile: str = _f("", "device client key")
    client_id: str = _f("", "MQTT client id; empty = the device id (brokers that take the identity "
                        "from it need exactly that)", pattern=r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$")
    username: str = _f("", "MQTT username; empty = none (mosquitto then takes the certificate CN)",
                       pattern=r"^[^\s:]{0,128}$")
    password_file: str = _f("", "file holding the MQTT password (one line, mode 0600 or stricter, "
                            "owned by the agent's user); empty = no password")
    keepalive_s: int = _f(30, "MQTT keep-alive", lo=5, hi=3600)
    max_inflight: int = _f(20, "QoS 1 messages in flight at most", lo=1, hi=1000)
    telemetry_s: int = _f(60, "telemetry period", lo=1, hi=3600)


@dataclass(frozen=True)
class OffloadConfig:
    """Upload to a collection station; only its signed receipts make a segment evictable."""

    enabled: bool = _f(False, "upload sealed segments to the collection station at offload.url")
    url: str = _f("", "the station, https://host:port (http:// only with offload.insecure_http)")
    cafile: str = _f("", "CA bundle that issued the station's certificate")
    certfile: str = _f("", "device TLS certificate (CN = device id; the MQTT client "
                       "certificate from enrolment serves)")
    keyfile: str = _f("", "device TLS key")
    live: bool = _f(False, "stream the open segment as it is written (seconds behind capture)")
    max_rate: int = _f(0, "upload rate cap in bytes/s; 0 = no cap", lo=0, hi=10_000_000_000)
    retry_s: float = _f(10.0, "longest wait between attempts while the station is unreachable",
                        lo=0.1, hi=3600)
    insecure_http: bool = _f(False, "allow http:// without TLS or identity (lab benches only)")
    station_keys: list[str] = field(default_factory=list, metadata=rule(
        "trusted station Ed25519 public keys: base64 (raw 32 bytes) or an absolute path to a "
        "PEM file; empty = no receipt is accepted, nothing is ever evicted"))


@dataclass(frozen=True)
class MattersConfig:
    """Enforcement matters (the seed's recording list)."""

    catalogue: str = _f("", "matter catalogue TOML; empty = the shipped catalogue")
    quick_list: list[str] = field(
        default_factory=list, metadata=rule("matter codes the button cycles through")
    )
    default: str = _f("", "matter assigned to new recordings; empty = uncategorised")


@dataclass(frozen=True)
class SimConfig:
    """Behaviour of the simulated hardware set (off-Pi default, tests, benches)."""

    battery_wh: float = _f(18.5, "simulated battery capacity", lo=0.01, hi=1000)
    battery_pct: float = _f(100.0, "simulated battery start level", lo=0, hi=100)
    time_scale: float = _f(1.0, "battery/clock time acceleration for benches", lo=0.01, hi=10_000)
    storage_quota_mb: int = _f(0, "simulated disk size in MiB; 0 = the real filesystem", lo=0, hi=10_000_000)
    clapper_s: float = _f(0.0, "flash + beep every N s for A/V sync benches; 0 = off", lo=0, hi=3600)
    gps_route: str = _f("walk", "simulated GPS route", choices=("walk", "static", "none"))
    audio_delay_ms: float = _f(0.0, "bench fault: the clapper beep lags the flash", lo=0, hi=5000)
    drop_every: int = _f(0, "bench fault: the camera drops every n-th frame; 0 = none", lo=0, hi=100_000)
    boundary_gap_ms: int = _f(0, "bench fault: frames lost at each segment roll; 0 = none", lo=0, hi=10_000)
    gps_drift_ppm: float = _f(0.0, "bench fault: GPS time runs off the system clock", lo=-10_000, hi=10_000)
    camera: str = _f("sim", "simulated camera: sim = synthetic pictures through libx264; replay = "
                     "the clip in sim.replay, looped, as a hardware encoder delivers it",
                     choices=("sim", "replay"))
    replay: str = _f("", "H.264 clip (MP4 or raw .h264) the replay camera plays; size, rate and "
                     "GOP come from the clip")


@dataclass(frozen=True)
class Config:
    """The whole recorder configuration."""

    device: DeviceConfig = field(default_factory=DeviceConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    recording: RecordingConfig = field(default_factory=RecordingConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    gps: GpsConfig = field(default_factory=GpsConfig)
    time: TimeConfig = field(default_factory=TimeConfig)
    power: PowerConfig = field(default_factory=PowerConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    evidence: EvidenceConfig = field(default_factory=EvidenceConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    offload: OffloadConfig = field(default_factory=OffloadConfig)
    matters: MattersConfig = field(default_factory=MattersConfig)
    sim: SimConfig = field(default_factory=SimConfig)
    night: NightConfig = field(default_factory=NightConfig)
    triggers: list[TriggerConfig] = field(default_factory=list)
    witnesses: list[WitnessConfig] = field(default_factory=list)

    def replace(self, dotted_key: str, value: Any) -> Config:
        """A copy with one ``section.key`` changed and validated (remote config_set)."""
        section_name, _, key = dotted_key.partition(".")
        raw = {section_name: {key: value}}
        merged = _merge(dataclasses.asdict(self), raw)
        return parse_config(merged, source="<override>")


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_type(key: str, value: Any, tp: Any, source: str) -> Any:
    """Reject a value of the wrong TOML type; integers are accepted where a float is asked."""
    if tp is bool:
        ok = isinstance(value, bool)
        what = "true or false"
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        what = "an integer"
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        what = "a number"
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
        what = "a string"
    else:
        raise ConfigError(f"internal: unsupported type {_type_name(tp)}", key=key, source=source)
    if not ok:
        raise ConfigError(f"{value!r} is not {what}", key=key, source=source)
    return value


def _check_rule(key: str, value: Any, meta: Mapping[str, Any], source: str) -> None:
    """Range, choice and pattern rules from the field's metadata."""
    lo, hi = meta.get("lo"), meta.get("hi")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if lo is not None and value < lo:
            raise ConfigError(f"{value!r} is below the minimum {lo}", key=key, source=source)
        if hi is not None and value > hi:
            raise ConfigError(f"{value!r} is above the maximum {hi}", key=key, source=source)
    choices = meta.get("choices")
    if choices and value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{value!r} is not one of {allowed}", key=key, source=source)
    pattern = meta.get("pattern")
    if pattern and isinstance(value, str) and not re.fullmatch(pattern, value):
        raise ConfigError(f"{value!r} does not match {pattern}", key=key, source=source)


def _check_value(key: str, value: Any, tp: Any, meta: Mapping[str, Any], source: str) -> Any:
    """Validate one value against its declared type and rule; return it (ints may become floats)."""
    if typing.get_origin(tp) is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{value!r} is not a list of {_type_name(item_tp)}", key=key, source=source)
        return [_check_value(f"{key}[{i}]", v, item_tp, meta, source) for i, v in enumerate(value)]
    value = _check_type(key, value, tp, source)
    _check_rule(key, value, meta, source)
    return value


def _build_section(cls: type[Any], raw: Any, name: str, source: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"must be a table, got {raw!r}", key=name, source=source)
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for k in raw:
        if k not in known:
            allowed = ", ".join(sorted(known))
            raise ConfigError(f"unknown key (allowed: {allowed})", key=f"{name}.{k}", source=source)
    values = {
        k: _check_value(f"{name}.{k}", v, hints[k], known[k].metadata, source) for k, v in raw.items()
    }
    return cls(**values)


def _build_table_array(tp: Any, raw: Any, name: str, source: str) -> list[Any]:
    """``[[name]]`` tables, each validated like a section; errors name ``name[i].key``."""
    (item_cls,) = typing.get_args(tp)
    if not isinstance(raw, list):
        raise ConfigError(f"must be an array of tables ([[{name}]]), got {raw!r}", key=name,
                          source=source)
    return [_build_section(item_cls, item, f"{name}[{i}]", source) for i, item in enumerate(raw)]


def parse_config(raw: Mapping[str, Any], *, source: str = "<config>") -> Config:
    """Validate a parsed TOML document and build the :class:`Config`."""
    sections = {f.name: f for f in dataclasses.fields(Config)}
    hints = typing.get_type_hints(Config)
    built: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in sections:
            allowed = ", ".join(sorted(sections))
            raise ConfigError(f"unknown section (allowed: {allowed})", key=name, source=source)
        if typing.get_origin(hints[name]) is list:  # an array of tables: [[triggers]]
            built[name] = _build_table_array(hints[name], value, name, source)
        else:
            built[name] = _build_section(hints[name], value, name, source)
    cfg = Config(**built)
    _cross_checks(cfg, source)
    return cfg


def _cross_checks(cfg: Config, source: str) -> None:
    """Rules that involve more than one key."""
    if cfg.power.critical_min >= cfg.power.warn_min:
        raise ConfigError(
            f"{cfg.power.critical_min} must be below power.warn_min ({cfg.power.warn_min})",
            key="power.critical_min",
            source=source,
        )
    for i, r in enumerate(cfg.evidence.recipients):
        if not re.fullmatch(r"age1[02-9ac-hj-np-z]{58}", r):
            raise ConfigError(
                f"{r!r} is not an age X25519 recipient (age1 followed by 58 bech32 characters)",
                key=f"evidence.recipients[{i}]",
                source=source,
            )
    if cfg.evidence.encrypt and not cfg.evidence.recipients and cfg.hardware.kind == "pi":
        raise ConfigError(
            "encryption is on but no agency recipient is configured; add one, or set "
            "evidence.encrypt = false explicitly (recorded in every manifest)",
            key="evidence.recipients",
            source=source,
        )
    _check_preroll_memory(cfg, source)
    if cfg.sim.camera == "replay" and not cfg.sim.replay:
        raise ConfigError("the replay camera needs a clip (sim.replay = \"FILE\")",
                          key="sim.replay", source=source)
    if cfg.video.width % 2 or cfg.video.height % 2:
        raise ConfigError("width and height must be even (4:2:0 video)", key="video", source=source)
    station_public_keys(cfg.offload, source=source)
    _check_offload(cfg.offload, source)
    _check_mqtt(cfg.mqtt, source)
    _check_pins(cfg, source)
    _check_witnesses(cfg.witnesses, source)


def _check_witnesses(witnesses: list[WitnessConfig], source: str) -> None:
    """Each witness key must be a cosignature/v1 verifier key whose id matches it."""
    from agent.witness.cosignature import TYPE_COSIGNATURE, VerifierKey
    from agent.witness.errors import CosignatureInvalid

    names: set[str] = set()
    for i, w in enumerate(witnesses):
        try:
            vkey = VerifierKey.parse(w.vkey)
        except CosignatureInvalid as exc:
            raise ConfigError(str(exc), key=f"witnesses[{i}].vkey", source=source) from None
        if vkey.key_type != TYPE_COSIGNATURE:
            raise ConfigError("not a witness key (signature type 0x04, cosignature/v1)",
                              key=f"witnesses[{i}].vkey", source=source)
        if vkey.name in names:
            raise ConfigError(f"witness {vkey.name} is listed twice", key=f"witnesses[{i}]",
                              source=source)
        if bool(w.certfile) != bool(w.keyfile):
            raise ConfigError("give both certfile and keyfile, or neither",
                              key=f"witnesses[{i}].certfile", source=source)
        names.add(vkey.name)


def _check_preroll_memory(cfg: Config, source: str) -> None:
    """The pre-event buffer lives in RAM: refuse one larger than an eighth of a declared RAM
    (512 MB boards: the kernel, the camera's buffers and the agent's ~90 MB share the rest)."""
    ram = cfg.hardware.memory_mb
    if not ram:
        return
    bits = (cfg.video.bitrate if cfg.device.profile != "audio" else 0) + (
        cfg.audio.bitrate if cfg.audio.enabled else 0)
    need_mb = cfg.recording.prerecord_s * bits / 8 / 1_048_576
    if need_mb > ram / 8:
        raise ConfigError(
            f"{cfg.recording.prerecord_s} s of pre-event buffer at {bits / 1e6:g} Mbit/s holds "
            f"~{need_mb:.0f} MiB in RAM, more than an eighth of hardware.memory_mb = {ram}: "
            "lower recording.prerecord_s or video.bitrate", key="recording.prerecord_s",
            source=source)


def _check_pins(cfg: Config, source: str) -> None:
    """Night-vision thresholds form a band; every fitted pin is used by one thing only; a
    trigger's matter goes with ``start_matter`` and only with it."""
    n = cfg.night
    if n.on_lux >= n.off_lux:
        raise ConfigError(f"{n.on_lux} must be below night.off_lux ({n.off_lux}): the band "
                          "between them is the hysteresis", key="night.on_lux", source=source)
    owners: dict[int, str] = {}

    def claim(pin: int, key: str) -> None:
        if not pin:
            return
        if pin in owners:
            raise ConfigError(f"pin {pin} is already used by {owners[pin]}", key=key,
                              source=source)
        owners[pin] = key

    for f in dataclasses.fields(GpioConfig):
        claim(getattr(cfg.gpio, f.name), f"gpio.{f.name}")
    claim(n.ir_led_pin, "night.ir_led_pin")
    claim(n.ircut_pin, "night.ircut_pin")
    names: set[str] = set()
    for i, t in enumerate(cfg.triggers):
        key = f"triggers[{i}]"
        if t.name in names:
            raise ConfigError(f"{t.name!r} names another trigger too", key=f"{key}.name",
                              source=source)
        names.add(t.name)
        if not t.pin:
            raise ConfigError("a trigger needs its input pin", key=f"{key}.pin", source=source)
        claim(t.pin, f"{key}.pin")
        if t.action == "start_matter" and not t.matter:
            raise ConfigError("a start_matter trigger needs a matter", key=f"{key}.matter",
                              source=source)
        if t.action != "start_matter" and t.matter:
            raise ConfigError(f"a matter is only used with action = \"start_matter\" (this "
                              f"trigger's action is {t.action!r})", key=f"{key}.matter",
                              source=source)


def _check_offload(offload: OffloadConfig, source: str) -> None:
    """An enabled offload names an https station (http only behind the lab switch)."""
    if not offload.enabled:
        return
    parts = urlsplit(offload.url)
    allowed = ("https", "http") if offload.insecure_http else ("https",)
    if parts.scheme not in allowed or not parts.hostname or "@" in parts.netloc:
        raise ConfigError(f"{offload.url!r} is not " + " or ".join(f"{a}://host:port"
                                                                   for a in allowed)
                          + ("" if offload.insecure_http else
                             " (plain http needs offload.insecure_http = true)"),
                          key="offload.url", source=source)
    if bool(offload.certfile) != bool(offload.keyfile):
        raise ConfigError("a TLS identity needs both offload.certfile and offload.keyfile",
                          key="offload.keyfile" if offload.certfile else "offload.certfile",
                          source=source)


def _check_mqtt(mqtt: MqttConfig, source: str) -> None:
    """The broker URL carries no credentials; a password file is private and has a user."""
    netloc = urlsplit(mqtt.url).netloc
    if "@" in netloc:
        raise ConfigError(
            "credentials in the broker URL are refused (they would be shown by config show and "
            "in logs); put the user name in mqtt.username and the password in the file named by "
            "mqtt.password_file", key="mqtt.url", source=source)
    if mqtt.password_file:
        if not mqtt.username:
            raise ConfigError("a password needs mqtt.username", key="mqtt.password_file",
                              source=source)
        read_secret_file(mqtt.password_file, key="mqtt.password_file", source=source)


_SECRET_MAX_BYTES = 4096


def read_secret_file(path: str, *, key: str, source: str = "<config>") -> str:
    """The one-line secret in ``path``, refused unless only the agent's own user can read it.

    The file must be a regular file (not a symlink), owned by the effective user running the
    agent, with no group or other permission bits (0600, 0400): a password that other local
    accounts can read is not a secret. One trailing newline is dropped. Errors name the file and
    the problem, never the content.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot open: {exc.strerror or exc}", key=key,
                          source=source) from exc
    try:
        st = os.fstat(fd)
        uid = os.geteuid()
        if not stat.S_ISREG(st.st_mode):
            problem = "not a regular file"
        elif st.st_uid != uid:
            problem = f"owned by uid {st.st_uid}, not by the agent's user (uid {uid})"
        elif st.st_mode & 0o077:
            problem = f"mode {stat.S_IMODE(st.st_mode):04o} lets other users read it; chmod 0600"
        elif st.st_size > _SECRET_MAX_BYTES:
            problem = f"larger than {_SECRET_MAX_BYTES} bytes"
        else:
            problem = ""
        if problem:
            raise ConfigError(f"{path}: {problem}", key=key, source=source)
        raw = os.read(fd, _SECRET_MAX_BYTES + 1)
    finally:
        os.close(fd)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text", key=key, source=source) from None
    secret = text[:-1] if text.endswith("\n") else text
    secret = secret[:-1] if secret.endswith("\r") else secret
    if not secret or "\n" in secret or "\r" in secret or "\0" in secret:
        raise ConfigError(f"{path}: must hold exactly one non-empty line", key=key, source=source)
    return secret


_B64_KEY = re.compile(r"[A-Za-z0-9+/]{43}=")


def station_public_keys(offload: OffloadConfig, *, source: str = "<config>") -> list[bytes]:
    """The raw Ed25519 keys of ``offload.station_keys`` (a PEM file is read each time)."""
    from agent.evidence.keys import public_key_from_text

    out: list[bytes] = []
    for i, entry in enumerate(offload.station_keys):
        key = f"offload.station_keys[{i}]"
        if _B64_KEY.fullmatch(entry):
            text = entry
        elif Path(entry).is_absolute():
            try:
                with open(entry, encoding="utf-8") as f:
                    text = f.read(16 * 1024)
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{entry}: cannot read the station key ({exc})", key=key,
                                  source=source) from None
        else:
            raise ConfigError(f"{entry[:60]!r} is neither a base64 Ed25519 public key (44 "
                              "characters) nor an absolute path to a PEM file", key=key,
                              source=source)
        try:
            out.append(public_key_from_text(text))
        except (EvidenceError, ValueError) as exc:
            raise ConfigError(f"{entry[:60]!r}: not an Ed25519 public key ({exc})", key=key,
                              source=source) from None
    return out


def load_config(path: Path | None) -> Config:
    """Read and validate a TOML file; ``None`` gives the built-in defaults."""
    if path is None:
        return Config()
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=source) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc}", source=source) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=source) from exc
    return parse_config(raw, source=source)
