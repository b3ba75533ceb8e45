"""Which battery reader a Pi uses: the one configured, or the first that answers (``auto``).

``power.source`` names a reader (``sysfs``, ``ina219``, ``pisugar``) or ``auto``. A named reader
that cannot be read is a :class:`hw.errors.DeviceMissing` whose message says what to fix. ``auto``
tries them in order -- a kernel fuel gauge (``power_supply``), a running ``pisugar-server``, an
INA219 -- and is never silent about a reader it passed over: each one is logged with its reason,
and when none answers the error lists every reason, because "no fuel gauge found" alone sends a
technician looking at the wrong part (a missing ``i2c-dev`` module looks exactly like a missing
chip otherwise).

Facts this is built on (Raspberry Pi OS bookworm):

* ``/dev/i2c-N`` exists only once the ``i2c-dev`` module is loaded (the Pi kernels build it as a
  module, ``CONFIG_I2C_CHARDEV=m``); ``dtparam=i2c_arm=on`` only enables the bus controller.
  The image loads it from ``/etc/modules-load.d/bodycam.conf``.
* ``pisugar-server`` listens on ``/tmp/pisugar-server.sock`` and on TCP port 8423. The agent's
  unit has ``PrivateTmp=yes``, so only the TCP port is reachable; it is the default here.
* A MAX1704x gauge appears under ``/sys/class/power_supply`` only with its device-tree overlay
  (``dtoverlay=i2c-sensor,max17040``; ``image-build/build.sh --fuel-gauge max17040``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hw.errors import DeviceMissing, PowerError
from hw.power import PowerMonitor
from hw.throttle import ThrottleSource

__all__ = ["i2c_device_path", "open_ina219", "select_power"]

log = logging.getLogger(__name__)

_AUTO_ORDER = ("sysfs", "pisugar", "ina219")


def i2c_device_path(bus: int, dev_root: Path = Path("/dev")) -> Path:
    """The character device of I²C bus ``bus``; PowerError naming the fix if it is absent."""
    path = Path(dev_root) / f"i2c-{bus}"
    if not path.exists():
        raise PowerError(
            f"{path} does not exist: the i2c-dev kernel module is not loaded (modprobe i2c-dev; "
            "the image loads it from /etc/modules-load.d/bodycam.conf) or the bus is off "
            "(dtparam=i2c_arm=on in config.txt)"
        )
    return path


def open_ina219(bus: int, address: int, *, dev_root: Path = Path("/dev"),
                throttle: ThrottleSource | None = None) -> PowerMonitor:
    """An INA219 reader on ``/dev/i2c-<bus>``; PowerError if the bus or the chip is absent."""
    path = i2c_device_path(bus, dev_root)
    try:
        from smbus2 import SMBus
    except ImportError as exc:
        raise PowerError(f"smbus2 is not installed ({exc}); install the agent with its [pi] extra") \
            from exc
    from hw.power_ina219 import Ina219Battery

    try:
        smbus = SMBus(str(path))
    except OSError as exc:
        raise PowerError(f"cannot open {path}: {exc}") from exc
    try:
        return Ina219Battery(smbus, address, throttle=throttle)
    except PowerError:
        smbus.close()
        raise


def _sysfs(p: Any, throttle: ThrottleSource | None, dev_root: Path) -> PowerMonitor:
    from hw.power_sysfs import SysfsBattery

    return SysfsBattery(Path(p.sysfs_root), p.battery_name or None, throttle=throttle)


def _pisugar(p: Any, throttle: ThrottleSource | None, dev_root: Path) -> PowerMonitor:
    from hw.power_pisugar import PiSugarBattery

    reader = PiSugarBattery(p.pisugar_socket or None, port=p.pisugar_port, throttle=throttle)
    reader.query()  # a server that is not running is found now, not at the first poll
    return reader


def _ina219(p: Any, throttle: ThrottleSource | None, dev_root: Path) -> PowerMonitor:
    return open_ina219(p.i2c_bus, p.ina219_address, dev_root=dev_root, throttle=throttle)


_OPENERS: dict[str, Callable[[Any, ThrottleSource | None, Path], PowerMonitor]] = {
    "sysfs": _sysfs, "pisugar": _pisugar, "ina219": _ina219,
}


def select_power(p: Any, *, throttle: ThrottleSource | None,
                 dev_root: Path = Path("/dev")) -> PowerMonitor | None:
    """The battery reader for the ``[power]`` section ``p``; None for ``source = "none"``.

    Raises :class:`DeviceMissing` with the reason of every reader tried when none answers.
    """
    if p.source == "none":
        return None
    names = _AUTO_ORDER if p.source == "auto" else (p.source,)
    skipped: list[str] = []
    for name in names:
        try:
            reader = _OPENERS[name](p, throttle, dev_root)
        except PowerError as exc:
            skipped.append(f"{name}: {exc}")
            if p.source == "auto":
                log.info("battery: %s not used: %s", name, exc)
            continue
        if p.source == "auto":
            log.info("battery: using %s (power.source = 'auto')", name)
        return reader
    if p.source != "auto":
        raise DeviceMissing(f"battery: power.source = {p.source!r} cannot be read: "
                            f"{skipped[0].partition(': ')[2]}")
    raise DeviceMissing(
        "battery: no fuel gauge found (power.source = 'auto'; tried " + "; ".join(skipped)
        + "); set power.source to the gauge fitted, or 'none' to run from mains without "
        "battery monitoring"
    )
