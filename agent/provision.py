"""What a recorder needs before anything is recorded: a usable data directory, the device key,
the recipients evidence is encrypted to, the boot id, the content-credential port.

On a device these come from provisioning (``bodycam keys init``, the agency's recipients in the
configuration); a missing key is a clear error and recording is refused. The simulator has no
provisioning: when the composition root says the hardware is simulated (``simulated=True``) a
device key and a bench identity are generated on first use, so the simulator's output can be
signed and opened.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from agent.config import Config, EvidenceConfig
from agent.evidence.age import Identity, Recipient
from agent.evidence.key_rotation import finish_interrupted_rotation
from agent.evidence.keys import DeviceKey
from agent.evidence.manifest import SignedManifest
from hw.errors import KeyMissing, StorageError

__all__ = ["boot_id", "check_data_dir", "content_credentials", "device_key", "recipients"]

log = logging.getLogger(__name__)


def check_data_dir(data_dir: Path) -> Path:
    """Create/verify the data directory; a clear :class:`StorageError` if it is unusable."""
    data_dir = Path(data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(exc.errno or 0, f"data directory {data_dir}: cannot create it "
                                          f"({exc.strerror})") from exc
    if not data_dir.is_dir():
        raise StorageError(20, f"data directory {data_dir}: not a directory")
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise StorageError(13, f"data directory {data_dir}: not writable by this user")
    return data_dir


def boot_id() -> str:
    """The kernel's boot id (hex, no dashes), logged with ``boot``; '' where there is none."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")
    except OSError:
        return ""


def device_key(data_dir: Path, *, simulated: bool) -> DeviceKey:
    """The device's signing key; :class:`KeyMissing` on a device without one (provisioning
    makes it), generated on first use in the simulator."""
    path = data_dir / "keys" / "device.key"
    try:
        done = finish_interrupted_rotation(path, data_dir / "log")
        if done:  # a crash interrupted a key rotation: the key must agree with the log
            log.warning("device key: %s", done)
        return DeviceKey.load(path)
    except KeyMissing:
        if not simulated:
            raise
        log.warning("simulator: generating a device key at %s", path)
        return DeviceKey.generate(path)


def recipients(evidence: EvidenceConfig, data_dir: Path, *, simulated: bool) -> list[Recipient]:
    """Who can open the evidence: the configured agency recipients; in the simulator with none
    configured (and encryption on), a bench identity kept in ``sim-agency.key``."""
    rcpts = [Recipient.parse(r) for r in evidence.recipients]
    if rcpts or not evidence.encrypt or not simulated:
        return rcpts
    # The simulator has no agency: it makes a bench identity so its output can be opened.
    path = data_dir / "sim-agency.key"
    if path.exists():
        identity = Identity.parse(path.read_text().strip().splitlines()[-1])
    else:
        from agent.atomic import atomic_write

        identity = Identity.generate()
        atomic_write(path, f"# simulator bench identity (not an agency key)\n{identity}\n"
                     .encode(), mode=0o600)
        log.warning("simulator: no agency recipient configured; encrypting to %s", path)
    return [identity.recipient]


def content_credentials(cfg: Config, data_dir: Path
                        ) -> Callable[[Path, SignedManifest], None] | None:
    """The store's after-seal C2PA port, or None; the C2PA library loads only when enabled."""
    if not cfg.evidence.c2pa:
        return None
    from agent.c2pa.port import after_seal_port  # ~23 MB shared library: only when asked for
    return after_seal_port(data_dir, cfg.device.id, test_ca=cfg.evidence.c2pa_test_ca)
