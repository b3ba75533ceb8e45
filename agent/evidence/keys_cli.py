"""``bodycam keys init [--rotate]``: make (or rotate) the device key from the command line.

Its own module because a rotation is written to the evidence log, and the log signs with
:class:`~agent.evidence.keys.DeviceKey`: keeping this command out of ``keys`` keeps the key
module below the log (no import cycle keys → log → checkpoint → keys). The rotation itself is
:func:`agent.evidence.key_rotation.rotate_and_log`, the one the running agent uses too; this
module only finds the log of a stopped agent and opens it (its process lock refuses while the
agent runs).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from hw.errors import EvidenceError

from .key_rotation import device_id_of_log, finish_interrupted_rotation, rotate_and_log
from .keys import KEY_NAME, DeviceKey
from .log import EvidenceLog, origin_for
from .utc import utc_now

__all__ = ["keys_init_main"]


def keys_init_main(argv: Sequence[str] | None = None) -> int:
    """``bodycam keys init [--data-dir DIR] [--rotate]``: create (or rotate) the device key.

    Prints the public key and its fingerprint, never the private key. A rotation is written
    to the evidence log (signed with the old key first) when the log exists.
    """
    parser = argparse.ArgumentParser(prog="bodycam keys init")
    parser.add_argument("--data-dir", type=Path, default=Path("/var/lib/bodycam"))
    parser.add_argument("--rotate", action="store_true", help="retire the current key")
    args = parser.parse_args(argv)
    path = args.data_dir / "keys" / KEY_NAME
    try:
        key = _rotate_and_log(args.data_dir, path) if args.rotate else DeviceKey.generate(path)
    except EvidenceError as exc:
        print(f"bodycam keys init: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(key.public_pem.decode())
    print(f"public key (base64): {key.public_b64}")
    print(f"fingerprint (sha256): {key.fingerprint}")
    return 0


def _rotate_and_log(data_dir: Path, path: Path) -> DeviceKey:
    """Rotate the key at ``path``, logged in ``data_dir``'s evidence log if there is one (a
    device that never recorded has no log to tell)."""
    log_dir = data_dir / "log"
    done = finish_interrupted_rotation(path, log_dir)
    if done:
        print(f"bodycam keys init: {done}", file=sys.stderr)
    old = DeviceKey.load(path)
    if not (log_dir / "entries.bin").exists():
        return DeviceKey.rotate(path)[0]
    log = EvidenceLog(log_dir, old, origin_for(device_id_of_log(log_dir)))
    try:
        return rotate_and_log(log, path, utc=utc_now())[0]
    finally:
        log.close()


