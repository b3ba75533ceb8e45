"""One validated configuration schema for the recorder.

The file format is TOML. Every section is a frozen dataclass whose fields carry their rule
(type, range, choices, pattern) in ``metadata`` (:mod:`agent.config_sections`, re-exported
here); :func:`load_config` walks the TOML (:mod:`agent.config_schema`), rejects unknown keys,
coerces nothing silently, and raises :class:`ConfigError` naming the key, the value and what
is allowed. Keeping the rules next to the defaults means the schema, the defaults and the
error messages can never drift apart. The rules that involve more than one key, secrets read
from files and the stations' public keys are here.
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

from agent.config_schema import build_section, build_table_array, merge, rule
from agent.config_sections import (
    AudioConfig,
    DeviceConfig,
    EvidenceConfig,
    GpioConfig,
    GpsConfig,
    HardwareConfig,
    MattersConfig,
    MqttConfig,
    NightConfig,
    OffloadConfig,
    PowerConfig,
    RecordingConfig,
    SimConfig,
    StorageConfig,
    TimeConfig,
    TriggerConfig,
    VideoConfig,
    WitnessConfig,
)
from hw.errors import ConfigError, EvidenceError

# The collection station's configuration (agent.station.station_config) builds its sections with these.
_build_section = build_section
_build_table_array = build_table_array

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
    "rule",
    "station_public_keys",
]


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
        merged = merge(dataclasses.asdict(self), raw)
        return parse_config(merged, source="<override>")


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
    from agent.witness.refusals import CosignatureInvalid

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
