"""The station's configuration: one TOML schema, checked the way the recorder's is.

The sections are frozen dataclasses whose fields carry their rule in ``metadata``, built by
:mod:`agent.config`'s own section builder, so a station file and a recorder file fail the same
way: unknown keys refused, nothing coerced silently, a :class:`ConfigError` naming the key, the
value and the rule (``bodycam`` exits 2).

Example (every key optional)::

    [station]
    id = "station-hq-1"            # in every receipt; empty = derived from the station key
    listen = "0.0.0.0"
    port = 8443
    url = "https://station.example:8443"
    store = "/srv/evidence"        # POSIX directory: local disk, NFS, CephFS
    database = ""                  # empty = SQLite in the data dir; or postgresql://…
    insecure_http = false          # lab only: plaintext, no client identity (loudly logged)

    [tls]
    cafile = "/etc/bodycam-station/ca.crt"      # the agency CA that issues device certificates
    certfile = "/etc/bodycam-station/server.crt"
    keyfile = "/etc/bodycam-station/server.key"

    [limits]
    max_upload_bytes = 4294967296
    body_timeout_s = 60
    max_uploads_per_device = 4
    idle_expiry_s = 86400

    [console]                      # the fleet console for browsers (docs/CONSOLE.md)
    enabled = true
    port = 8444                    # its own HTTPS listener: browsers carry no client certificate
    broker = ""                    # empty = [mqtt]'s broker and back-office identity; or
                                   # mqtts://… with its own cafile/certfile/keyfile here
    tile_url = ""                  # e.g. "https://tiles.agency.example/{z}/{x}/{y}.png"
    session_s = 28800

    [group]                        # group activation (docs/STATION-API.md §12); needs [mqtt]
    enabled = false
    radius_m = 150
    max_fix_age_s = 90
    cooldown_s = 120
    [[group.teams]]
    name = "alpha"
    devices = ["bc-0001", "bc-0002", "bc-0003"]

    [witnessing]                   # how the custody log's witnesses are asked (docs/EVIDENCE-DESK.md)
    retry_s = 2                    # first retry after a witness failed; doubles each time
    max_retry_s = 300
    watch_s = 2                    # how often acts by other processes are looked for

    [[witnesses]]                  # C2SP tlog-witnesses of the custody log, as a device's
    url = "https://witness.agency.example/bodycam"
    vkey = "witness.agency.example+1a2b3c4d+…"
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.config import WitnessConfig, _build_section, _build_table_array, _check_witnesses, rule
from agent.evidence.ids import DEVICE_ID_PATTERN
from hw.errors import ConfigError

__all__ = ["ConsoleConfig", "GroupConfig", "GroupTeam", "LimitsConfig", "StationConfig",
           "StationSection", "TlsConfig", "WitnessingConfig", "load_station_config",
           "parse_station_config"]

_STATION_ID = r"^([A-Za-z0-9][A-Za-z0-9.-]{0,63})?$"  # a receipt's station_id rule, or empty


def _f(default: Any, doc: str, **kw: Any) -> Any:
    return field(default=default, metadata=rule(doc, **kw))


@dataclass(frozen=True)
class StationSection:
    """Who the station is, where it listens and where it keeps evidence."""

    id: str = _f("", "station id named in receipts; empty = st-<key fingerprint>",
                 pattern=_STATION_ID)
    listen: str = _f("0.0.0.0", "address to listen on")
    port: int = _f(8443, "TCP port; 0 = any free port (printed at start)", lo=0, hi=65535)
    url: str = _f("", "URL devices use (station info); empty = derived from listen/port")
    store: str = _f("", "write-once store directory; empty = <data dir>/store")
    database: str = _f("", "index: empty = SQLite in the data dir, or a postgresql:// URL")
    insecure_http: bool = _f(False, "plain HTTP without client certificates (lab benches only)")


@dataclass(frozen=True)
class TlsConfig:
    """Mutual TLS: the agency CA authenticates devices; the station shows its own certificate."""

    cafile: str = _f("", "CA bundle that issued the devices' client certificates")
    certfile: str = _f("", "station server certificate (PEM)")
    keyfile: str = _f("", "station server key (PEM)")


@dataclass(frozen=True)
class LimitsConfig:
    """Bounds on what one device can make the station hold or wait for."""

    max_upload_bytes: int = _f(4 << 30, "largest segment accepted", lo=1, hi=1 << 40)
    body_timeout_s: float = _f(60.0, "longest one request body may take", lo=0.1, hi=3600)
    max_uploads_per_device: int = _f(4, "unfinished uploads one device may hold", lo=1, hi=1000)
    idle_expiry_s: float = _f(86_400.0, "an upload idle this long is quarantined", lo=0.1,
                              hi=90 * 86_400)
    expiry_check_s: float = _f(60.0, "how often idle uploads are looked for", lo=0.05, hi=3600)
    min_free_bytes: int = _f(64 << 20, "store space kept free; below it uploads get 507", lo=0,
                             hi=1 << 50)


@dataclass(frozen=True)
class MqttConfig:
    """The checkpoint monitor (agent/station/monitor.py): the broker, the back-office identity
    it reads checkpoints and writes alarms with, and the shared-subscription group that splits
    the fleet's checkpoints between station processes."""

    enabled: bool = _f(False, "check every checkpoint devices publish over MQTT")
    url: str = _f("", "broker URL, mqtts://host[:port] (mqtt:// needs allow_plaintext)")
    allow_plaintext: bool = _f(False, "accept an mqtt:// broker (lab benches only)")
    cafile: str = _f("", "CA that signed the broker's certificate")
    certfile: str = _f("", "the back-office client certificate (PEM)")
    keyfile: str = _f("", "its key (PEM)")
    share_group: str = _f("bodycam-station", "MQTT v5 shared-subscription group of the stations",
                          pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    client_id: str = _f("", "MQTT client id; empty = <station id>-monitor (one per process)",
                        pattern=r"^[A-Za-z0-9_.-]{0,64}$")


@dataclass(frozen=True)
class ConsoleConfig:
    """The fleet console: its listener, the back-office MQTT identity it watches and commands
    the fleet with, the agency's map tiles and how long a signed-in browser stays signed in."""

    enabled: bool = _f(False, "serve the fleet console (docs/CONSOLE.md)")
    port: int = _f(8444, "HTTPS port for browsers; 0 = any free port", lo=0, hi=65535)
    broker: str = _f("", "MQTT broker URL, mqtts://host[:port]; empty = [mqtt] url and identity")
    allow_plaintext: bool = _f(False, "accept an mqtt:// broker (lab benches only)")
    cafile: str = _f("", "CA that signed the broker's certificate (with broker)")
    certfile: str = _f("", "the console's back-office client certificate (PEM, with broker)")
    keyfile: str = _f("", "its key (PEM, with broker)")
    tile_url: str = _f("", "map tiles, https://…/{z}/{x}/{y}.png; empty = a plain grid")
    session_s: float = _f(8 * 3600.0, "a sign-in lasts this long", lo=60, hi=7 * 86_400)


@dataclass(frozen=True)
class GroupTeam:
    """One team whose members the station starts together (agent/station/group.py)."""

    name: str = _f("", "team name (in the station's log)", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    devices: list[str] = field(default_factory=list, metadata=rule(
        "the team's device ids", pattern=DEVICE_ID_PATTERN))


@dataclass(frozen=True)
class GroupConfig:
    """Group activation: when a unit starts recording, the station starts its team-mates nearby
    (``[group]`` with ``[[group.teams]]``; needs ``[mqtt]``)."""

    enabled: bool = _f(False, "start nearby team-mates when a unit starts recording")
    radius_m: float = _f(150.0, "how near a team-mate must be", lo=1, hi=100_000)
    max_fix_age_s: float = _f(90.0, "a fix older than this is not a position (devices report "
                              "every mqtt.telemetry_s, 60 s by default)", lo=0.1, hi=3600)
    cooldown_s: float = _f(120.0, "a device the station started is not started (nor cascades) "
                           "again within this", lo=0, hi=86_400)
    teams: list[GroupTeam] = field(default_factory=list)


@dataclass(frozen=True)
class WitnessingConfig:
    """How the station's custody log is submitted to its ``[[witnesses]]``
    (agent/station/custodywitness.py)."""

    retry_s: float = _f(2.0, "first retry after a witness failed (doubles each time)", lo=0.05,
                        hi=3600)
    max_retry_s: float = _f(300.0, "longest wait between retries", lo=0.05, hi=86_400)
    watch_s: float = _f(2.0, "how often the log is looked at for acts of other processes",
                        lo=0.05, hi=600)


@dataclass(frozen=True)
class StationConfig:
    """The whole station configuration."""

    station: StationSection = field(default_factory=StationSection)
    tls: TlsConfig = field(default_factory=TlsConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    group: GroupConfig = field(default_factory=GroupConfig)
    witnessing: WitnessingConfig = field(default_factory=WitnessingConfig)
    witnesses: list[WitnessConfig] = field(default_factory=list)


def parse_station_config(raw: typing.Mapping[str, Any], *,
                         source: str = "<station config>") -> StationConfig:
    """Validate a parsed TOML document and build the :class:`StationConfig`."""
    sections = {f.name: f for f in dataclasses.fields(StationConfig)}
    hints = typing.get_type_hints(StationConfig)
    built: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in sections:
            allowed = ", ".join(sorted(sections))
            raise ConfigError(f"unknown section (allowed: {allowed})", key=name, source=source)
        if name == "group":
            built[name] = _group(value, source)
        elif name == "witnesses":  # [[witnesses]]: the device's schema and checks
            built[name] = _build_table_array(hints[name], value, name, source)
        else:
            built[name] = _build_section(hints[name], value, name, source)
    cfg = StationConfig(**built)
    _cross_checks(cfg, source)
    return cfg


def _group(raw: Any, source: str) -> GroupConfig:
    """``[group]`` with its ``[[group.teams]]`` array of tables."""
    if not isinstance(raw, typing.Mapping):
        raise ConfigError(f"must be a table, got {raw!r}", key="group", source=source)
    rest = {k: v for k, v in raw.items() if k != "teams"}
    teams = _build_table_array(list[GroupTeam], raw.get("teams", []), "group.teams", source)
    for i, t in enumerate(teams):
        if not t.name or not t.devices:
            raise ConfigError("a team needs a name and at least one device",
                              key=f"group.teams[{i}]", source=source)
    section: GroupConfig = _build_section(GroupConfig, rest, "group", source)
    return dataclasses.replace(section, teams=teams)


def _cross_checks(cfg: StationConfig, source: str) -> None:
    db = cfg.station.database
    if db and urlsplit(db).scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"{db[:40]!r} is not a postgresql:// URL (empty = SQLite)",
                          key="station.database", source=source)
    if not cfg.station.insecure_http:
        for name in ("cafile", "certfile", "keyfile"):
            if not getattr(cfg.tls, name):
                raise ConfigError("required for HTTPS with client certificates (or set "
                                  "station.insecure_http = true on a lab bench)",
                                  key=f"tls.{name}", source=source)
    _mqtt_checks(cfg.mqtt, source)
    _console_checks(cfg.console, cfg.mqtt, source)
    _check_witnesses(cfg.witnesses, source)
    for i, w in enumerate(cfg.witnesses):
        if not w.url:
            raise ConfigError("a witness needs its submission URL", key=f"witnesses[{i}].url",
                              source=source)
    if cfg.witnessing.max_retry_s < cfg.witnessing.retry_s:
        raise ConfigError(f"must be at least witnessing.retry_s ({cfg.witnessing.retry_s})",
                          key="witnessing.max_retry_s", source=source)
    if cfg.group.enabled and not cfg.mqtt.enabled:
        raise ConfigError("group activation watches and commands the fleet over MQTT: enable "
                          "[mqtt]", key="group.enabled", source=source)


def _console_checks(c: ConsoleConfig, m: MqttConfig, source: str) -> None:
    if not c.enabled:
        return
    if not c.broker:
        if not m.url:
            raise ConfigError("the console watches the fleet over MQTT: give console.broker "
                              "or the [mqtt] url", key="console.broker", source=source)
        return  # [mqtt] is checked on its own
    scheme = urlsplit(c.broker).scheme
    if scheme == "mqtt" and not c.allow_plaintext:
        raise ConfigError("plaintext MQTT refused; use mqtts:// or set console.allow_plaintext",
                          key="console.broker", source=source)
    if scheme == "mqtts" and not (c.cafile and c.certfile and c.keyfile):
        raise ConfigError("mqtts:// needs the back-office identity (cafile, certfile, keyfile)",
                          key="console.cafile", source=source)
    if c.tile_url and not (urlsplit(c.tile_url).scheme in ("https", "http")
                           and all(k in c.tile_url for k in ("{z}", "{x}", "{y}"))):
        raise ConfigError("must be an http(s) URL with {z}, {x} and {y}", key="console.tile_url",
                          source=source)


def _mqtt_checks(m: MqttConfig, source: str) -> None:
    if not m.enabled:
        return
    scheme = urlsplit(m.url).scheme
    if scheme not in ("mqtt", "mqtts"):
        raise ConfigError("the checkpoint monitor needs the broker URL (mqtts://host[:port])",
                          key="mqtt.url", source=source)
    if scheme == "mqtt" and not m.allow_plaintext:
        raise ConfigError("plaintext MQTT refused; use mqtts:// or set mqtt.allow_plaintext",
                          key="mqtt.url", source=source)
    if scheme == "mqtts" and not (m.cafile and m.certfile and m.keyfile):
        raise ConfigError("mqtts:// needs the back-office identity (cafile, certfile, keyfile)",
                          key="mqtt.cafile", source=source)


def load_station_config(path: Path | None) -> StationConfig:
    """Read and validate a TOML file; ``None`` gives the defaults (enough for list/info/enrol;
    ``station run`` refuses them: serving needs TLS files or the explicit lab switch)."""
    if path is None:
        return StationConfig()
    source = str(path)
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", source=source) from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=source) from exc
    return parse_station_config(raw, source=source)
