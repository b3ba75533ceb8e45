"""First-boot provisioning makes the device's identity on the device and asks to be enrolled.

bodycam-provision runs against two real tmpfs mounts standing in for the data and boot
partitions, with the agent's real ``bodycam keys init``; its enrolment request is checked
against the key files with the cryptography library.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from agent.config import load_config

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "image-build" / "stage-bodycam" / "00-bodycam" / "files"
PROVISION = FILES / "bodycam-provision"
BODYCAM = Path(sys.executable).with_name("bodycam")
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(os.geteuid() != 0, reason="mounts tmpfs and sets file ownership"),
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("openssl", "setpriv", "mountpoint", "mount")),
        reason="needs openssl and util-linux (setpriv, mountpoint, mount)",
    ),
    pytest.mark.skipif(not BODYCAM.exists(), reason="needs the bodycam command in this venv"),
]


class Card:
    """The data and boot partitions of a freshly flashed card, as two tmpfs mounts."""

    def __init__(self, root: Path, *, mount_data: bool = True) -> None:
        self.root = root
        self.data = root / "data"
        self.boot = root / "boot"
        self.mounts: list[Path] = []
        for part, mount in ((self.data, mount_data), (self.boot, True)):
            part.mkdir()
            if mount:
                subprocess.run(
                    ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(part)],
                    check=True,
                    capture_output=True,
                )
                self.mounts.append(part)
        template = (FILES / "bodycam.toml.in").read_text()
        self.template = root / "bodycam.toml.in"
        self.template.write_text(
            template.replace("recipients = [@RECIPIENTS@]", f'recipients = ["{RECIPIENT}"]').replace(
                'url = "@MQTT_URL@"', 'url = "mqtts://fleet.example:8883"'
            )
        )

    def provision(self, model: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run bodycam-provision; ``model`` is the board's device-tree model string (None: a
        machine without one, like the smoke-test VM)."""
        model_file = self.root / "model"
        model_file.unlink(missing_ok=True)
        if model is not None:
            model_file.write_bytes(model.encode() + b"\0")  # NUL-terminated, as the kernel has it
        env = dict(
            os.environ,
            BODYCAM_DATA=str(self.data),
            BODYCAM_BOOT=str(self.boot),
            BODYCAM_BIN=str(BODYCAM),
            BODYCAM_USER="root",
            BODYCAM_GROUP="root",
            BODYCAM_TEMPLATE=str(self.template),
            BODYCAM_MODEL=str(model_file),
        )
        return subprocess.run(
            [str(PROVISION)], env=env, capture_output=True, text=True, check=False, timeout=100
        )

    def unmount(self) -> None:
        for part in reversed(self.mounts):
            subprocess.run(["umount", str(part)], check=False, capture_output=True)


@pytest.fixture
def card_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="bodycam-card-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def card(card_root: Path) -> Iterator[Card]:
    try:
        c = Card(card_root)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot mount tmpfs here: {exc.stderr.decode(errors='replace').strip()}")
    try:
        yield c
    finally:
        c.unmount()


def test_provisioning_makes_key_config_and_a_verifiable_enrolment_request(card: Card) -> None:
    """The request's key, fingerprint and certificate request all match the device's files."""
    result = card.provision()
    assert result.returncode == 0, result.stderr

    request = json.loads((card.boot / "bodycam-enrol.json").read_text())
    device_id = request["device_id"]
    assert re.fullmatch(r"BC-[0-9A-F]{1,16}", device_id)

    cfg = load_config(card.data / "config" / "bodycam.toml")
    assert cfg.device.id == device_id
    assert cfg.hardware.kind == "pi"

    pub_pem = (card.data / "keys" / "device.pub").read_bytes()
    raw = serialization.load_pem_public_key(pub_pem).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert request["public_key_pem"] == pub_pem.decode()
    assert base64.b64decode(request["public_key_ed25519_b64"]) == raw
    assert request["fingerprint_sha256"] == hashlib.sha256(raw).hexdigest()

    csr = x509.load_pem_x509_csr(request["mqtt_csr_pem"].encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == device_id

    assert (card.data / "keys" / "device.key").stat().st_mode & 0o077 == 0
    assert (card.data / "keys" / "mqtt.key").stat().st_mode & 0o077 == 0
    assert (card.data / ".bodycam-provisioned").exists()
    assert "----- BODYCAM ENROLMENT REQUEST -----" in result.stdout
    assert "PRIVATE KEY" not in result.stdout + (card.boot / "bodycam-enrol.json").read_text()


def test_configuration_on_the_boot_partition_replaces_the_template(card: Card) -> None:
    """A bodycam.toml put on the card before first boot is used, with the id filled in."""
    custom = card.template.read_text().replace('officer_id = ""', 'officer_id = "PC-4711"')
    (card.boot / "bodycam.toml").write_text(custom)
    result = card.provision()
    assert result.returncode == 0, result.stderr
    assert "configuration supplied on the boot partition" in result.stdout
    cfg = load_config(card.data / "config" / "bodycam.toml")
    assert cfg.device.officer_id == "PC-4711"
    assert cfg.device.id.startswith("BC-")


@pytest.mark.parametrize(("model", "port"), [
    ("Raspberry Pi 5 Model B Rev 1.0", "/dev/ttyAMA0"),
    ("Raspberry Pi 500 Rev 1.0", "/dev/ttyAMA0"),
    ("Raspberry Pi Compute Module 5 Rev 1.0", "/dev/ttyAMA0"),
    ("Raspberry Pi 4 Model B Rev 1.5", "/dev/serial0"),
    ("Raspberry Pi Zero 2 W Rev 1.0", "/dev/serial0"),
    ("Raspberry Pi 3 Model B Plus Rev 1.3", "/dev/serial0"),
    (None, "/dev/serial0"),
])
def test_gps_port_follows_the_board_model(card: Card, model: str | None, port: str) -> None:
    """On BCM2712 boards serial0 is the debug connector: the header UART is ttyAMA0 there."""
    result = card.provision(model)
    assert result.returncode == 0, result.stderr
    assert load_config(card.data / "config" / "bodycam.toml").gps.port == port
    assert f"GPS receiver port for this board: {port}" in result.stdout


def test_rerun_after_completion_keeps_the_identity(card: Card) -> None:
    """Running again (a retry) never replaces the device key: its identity is stable."""
    assert card.provision().returncode == 0
    key = (card.data / "keys" / "device.key").read_bytes()
    again = card.provision()
    assert again.returncode == 0, again.stderr
    assert (card.data / "keys" / "device.key").read_bytes() == key


def test_refuses_to_provision_without_the_data_partition(card_root: Path) -> None:
    """Without the data partition mounted nothing is written to the root filesystem."""
    try:
        c = Card(card_root, mount_data=False)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot mount tmpfs here: {exc.stderr.decode(errors='replace').strip()}")
    try:
        result = c.provision()
        assert result.returncode != 0
        assert "is not mounted" in result.stderr
        assert list(c.data.iterdir()) == []
        assert not (c.boot / "bodycam-enrol.json").exists()
    finally:
        c.unmount()
