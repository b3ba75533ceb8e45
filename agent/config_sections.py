"""The sections of the recorder's configuration, one frozen dataclass per TOML table.

Each field carries its default, its one-line meaning and its rule (:func:`agent.config_schema.rule`),
so the schema, the defaults and the error messages cannot drift apart. The whole configuration
(:class:`agent.config.Config`), the rules across keys and loading are in :mod:`agent.config`,
which re-exports every section.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent.config_schema import rule
from agent.config_schema import ruled as _f
from agent.evidence.ids import DEVICE_ID_PATTERN

__all__ = [
    "AudioConfig",
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
]


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
