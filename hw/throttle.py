"""Raspberry Pi supply health: undervoltage and firmware throttling.

A sagging supply is the first sign that a battery is about to let the recorder down, often
before a fuel gauge notices. The Pi reports it in two places:

* the ``rpi_volt`` hwmon device (kernel ``raspberrypi-hwmon`` driver): a directory
  ``/sys/class/hwmon/hwmonN`` whose ``name`` reads ``rpi_volt`` and whose
  ``in0_lcrit_alarm`` reads ``1`` while the supply is below the firmware's limit (~4.63 V);
* the firmware's ``vcgencmd get_throttled`` (``throttled=0x50005``), whose bits are

  ====  =========================================  ====  ===============================
  bit   now                                        bit   has occurred since boot
  ====  =========================================  ====  ===============================
  0     under-voltage detected                     16    under-voltage has occurred
  1     ARM frequency capped                       17    ARM frequency capping occurred
  2     currently throttled                        18    throttling has occurred
  3     soft temperature limit active              19    soft temperature limit occurred
  ====  =========================================  ====  ===============================

Both sources take a root path or an injected command runner, so tests feed them fake trees
and canned outputs.

Two facts decide how they are combined (:class:`PiSupplyMonitor`):

* ``rpi_volt`` knows only under-voltage; throttling and frequency capping come from
  ``get_throttled`` alone. ``vcgencmd`` talks to the firmware through ``/dev/vcio``, which the
  agent's unit must allow (``DeviceAllow=/dev/vcio rw``; the device belongs to group video).
* The ``raspberrypi-hwmon`` driver behind ``rpi_volt`` polls the firmware every 2 s and asks it
  to clear the sticky bits each time (``value = 0xffff``, "Request firmware to clear sticky
  bits"). With that driver loaded, the "has occurred since boot" bits of ``get_throttled``
  cover only the last poll period. The monitor therefore keeps them itself: every flag it has
  ever seen, now or sticky, stays set in the ``*_occurred`` fields for the life of the
  monitor. An event shorter than the kernel's poll that falls between two of our readings can
  still be missed; nothing in user space can recover it.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol, runtime_checkable

from hw.errors import PowerError

__all__ = [
    "CommandRunner",
    "PiSupplyMonitor",
    "RpiVoltHwmon",
    "ThrottleSource",
    "ThrottleState",
    "VcgencmdThrottle",
    "find_rpi_volt",
    "parse_get_throttled",
    "pi_throttle_source",
]

log = logging.getLogger(__name__)

CommandRunner = Callable[[Sequence[str]], str]
"""Runs a command and returns its standard output (raises ``OSError`` if it cannot run)."""

_UNDERVOLTAGE_NOW = 1 << 0
_FREQ_CAPPED_NOW = 1 << 1
_THROTTLED_NOW = 1 << 2
_SOFT_TEMP_NOW = 1 << 3
_UNDERVOLTAGE_OCCURRED = 1 << 16
_FREQ_CAPPED_OCCURRED = 1 << 17
_THROTTLED_OCCURRED = 1 << 18
_SOFT_TEMP_OCCURRED = 1 << 19

_THROTTLED_RE = re.compile(r"^\s*throttled=(0x[0-9a-fA-F]+|\d+)\s*$")


@dataclass(frozen=True, slots=True)
class ThrottleState:
    """Supply and throttling flags; the ``*_occurred`` flags are sticky until reboot."""

    undervoltage: bool = False
    freq_capped: bool = False
    throttled: bool = False
    soft_temp_limit: bool = False
    undervoltage_occurred: bool = False
    freq_capped_occurred: bool = False
    throttled_occurred: bool = False
    soft_temp_limit_occurred: bool = False
    raw: int | None = None  # the get_throttled word, when that was the source


@runtime_checkable
class ThrottleSource(Protocol):
    """Anything that reports the supply flags (hwmon, vcgencmd, a simulator)."""

    def read(self) -> ThrottleState:
        """Current flags; raises :class:`hw.errors.PowerError` if the source is gone."""
        ...


def parse_get_throttled(output: str) -> ThrottleState:
    """Decode ``vcgencmd get_throttled`` output such as ``throttled=0x50005``."""
    match = _THROTTLED_RE.match(output.strip())
    if match is None:
        raise PowerError(f"unrecognised get_throttled output: {output.strip()!r}")
    word = int(match.group(1), 0)
    return ThrottleState(
        undervoltage=bool(word & _UNDERVOLTAGE_NOW),
        freq_capped=bool(word & _FREQ_CAPPED_NOW),
        throttled=bool(word & _THROTTLED_NOW),
        soft_temp_limit=bool(word & _SOFT_TEMP_NOW),
        undervoltage_occurred=bool(word & _UNDERVOLTAGE_OCCURRED),
        freq_capped_occurred=bool(word & _FREQ_CAPPED_OCCURRED),
        throttled_occurred=bool(word & _THROTTLED_OCCURRED),
        soft_temp_limit_occurred=bool(word & _SOFT_TEMP_OCCURRED),
        raw=word,
    )


def _run(argv: Sequence[str]) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=5, check=True)
    return done.stdout


class VcgencmdThrottle:
    """Flags from the firmware via ``vcgencmd get_throttled`` (runner injectable for tests)."""

    def __init__(self, *, runner: CommandRunner | None = None,
                 command: Sequence[str] = ("vcgencmd", "get_throttled")) -> None:
        self._runner = runner or _run
        self._command = tuple(command)

    def read(self) -> ThrottleState:
        """Run the command once and decode it."""
        try:
            output = self._runner(self._command)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PowerError(f"{' '.join(self._command)} failed: {exc}") from exc
        return parse_get_throttled(output)


def find_rpi_volt(root: Path = Path("/sys/class/hwmon")) -> Path | None:
    """The hwmon directory whose ``name`` is ``rpi_volt``, or None on a board without one."""
    try:
        candidates = sorted(root.iterdir())
    except OSError:
        return None
    for entry in candidates:
        try:
            if (entry / "name").read_text().strip() == "rpi_volt":
                return entry
        except OSError:
            continue
    return None


class RpiVoltHwmon:
    """Undervoltage from the ``rpi_volt`` hwmon; the kernel exposes no throttling flags here."""

    def __init__(self, root: Path = Path("/sys/class/hwmon")) -> None:
        found = find_rpi_volt(Path(root))
        if found is None:
            raise PowerError(f"no rpi_volt hwmon device under {root}")
        self._dir = found

    @property
    def path(self) -> Path:
        """The hwmon directory in use."""
        return self._dir

    def read(self) -> ThrottleState:
        """Read ``in0_lcrit_alarm`` (1 = supply below the low-critical limit)."""
        try:
            text = (self._dir / "in0_lcrit_alarm").read_text().strip()
        except OSError as exc:
            raise PowerError(f"cannot read {self._dir / 'in0_lcrit_alarm'}: {exc}") from exc
        try:
            alarm = int(text) != 0
        except ValueError as exc:
            raise PowerError(f"unexpected in0_lcrit_alarm value {text!r}") from exc
        return ThrottleState(undervoltage=alarm)


_NOW_TO_OCCURRED = {
    "undervoltage": "undervoltage_occurred",
    "freq_capped": "freq_capped_occurred",
    "throttled": "throttled_occurred",
    "soft_temp_limit": "soft_temp_limit_occurred",
}


class PiSupplyMonitor:
    """Supply flags from every source the board has, with the since-boot flags kept here.

    ``read`` ORs the current flags of the sources that answer (``rpi_volt``'s alarm and the
    firmware word) and latches every flag seen -- current or sticky -- into the ``*_occurred``
    fields, which then never clear. A source that fails is skipped (logged once); only when all
    fail is the reading a :class:`PowerError`. Thread-safe: the latch is under ``_lock``.
    """

    def __init__(self, *, hwmon: ThrottleSource | None = None,
                 firmware: ThrottleSource | None = None) -> None:
        self._sources = [(name, src) for name, src in (("rpi_volt", hwmon), ("get_throttled", firmware))
                         if src is not None]
        if not self._sources:
            raise PowerError("no supply-flag source (neither rpi_volt nor vcgencmd)")
        self._latched = {occurred: False for occurred in _NOW_TO_OCCURRED.values()}
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @property
    def sources(self) -> tuple[str, ...]:
        """The sources in use, by name."""
        return tuple(name for name, _ in self._sources)

    def read(self) -> ThrottleState:
        """Current flags of all sources, with every flag seen so far latched as occurred."""
        states: list[ThrottleState] = []
        failures: list[str] = []
        for name, source in self._sources:
            try:
                states.append(source.read())
            except PowerError as exc:
                failures.append(f"{name}: {exc}")
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning("supply flags: %s unavailable: %s", name, exc)
        if not states:
            raise PowerError("no supply-flag source answered (" + "; ".join(failures) + ")")
        merged = {f.name: any(getattr(st, f.name) for st in states)
                  for f in fields(ThrottleState) if f.name != "raw"}
        with self._lock:
            for now, occurred in _NOW_TO_OCCURRED.items():
                self._latched[occurred] |= merged[now] or merged[occurred]
                merged[occurred] = self._latched[occurred]
        raw = next((st.raw for st in states if st.raw is not None), None)
        return ThrottleState(**merged, raw=raw)


def pi_throttle_source(hwmon_root: Path = Path("/sys/class/hwmon"), *,
                       vcgencmd: str | None = None,
                       runner: CommandRunner | None = None) -> PiSupplyMonitor | None:
    """The supply flags of this board: ``rpi_volt`` (under-voltage without a process per
    reading) together with ``vcgencmd get_throttled`` (throttling), whichever exist; None when
    neither does (not a Raspberry Pi). ``vcgencmd`` defaults to the one on ``PATH``."""
    hwmon = RpiVoltHwmon(hwmon_root) if find_rpi_volt(hwmon_root) is not None else None
    command = vcgencmd if vcgencmd is not None else shutil.which("vcgencmd")
    firmware = (VcgencmdThrottle(runner=runner, command=(command, "get_throttled"))
                if command else None)
    if hwmon is None and firmware is None:
        return None
    return PiSupplyMonitor(hwmon=hwmon, firmware=firmware)
