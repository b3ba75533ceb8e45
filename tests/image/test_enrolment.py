"""bodycam-enrol installs the fleet's certificate only for this device's own key and id.

A real fleet CA, device key and request are made with the openssl CLI, as the back office
and bodycam-provision make them; the script runs against a temporary data and boot tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENROL = REPO / "image-build" / "stage-bodycam" / "00-bodycam" / "files" / "bodycam-enrol"
TEMPLATE = ENROL.with_name("bodycam.toml.in")
DEVICE = "BC-10000000ABCDEF12"

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI"),
    pytest.mark.skipif(os.geteuid() != 0, reason="installs files owned by root"),
]


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Card:
    """A provisioned device's data partition and boot partition, plus a fleet CA."""

    def __init__(self, root: Path) -> None:
        self.data = root / "data"
        self.boot = root / "boot"
        self.ca = root / "ca"
        for d in (self.data / "keys", self.data / "config", self.boot, self.ca):
            d.mkdir(parents=True)
        conf = TEMPLATE.read_text().replace("@DEVICE_ID@", DEVICE)
        (self.data / "config" / "bodycam.toml").write_text(conf)
        _openssl(
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(self.ca / "ca.key"),
            "-out",
            str(self.ca / "ca.crt"),
            "-subj",
            "/CN=fleet CA",
            "-days",
            "30",
        )
        self.request(DEVICE, self.data / "keys" / "mqtt.key", self.ca / "device.csr")

    def request(self, cn: str, key: Path, csr: Path) -> None:
        _openssl(
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-subj",
            f"/CN={cn}",
            "-out",
            str(csr),
        )

    def issue(self, csr: Path) -> None:
        """The back office signs a request and puts the result on the boot partition."""
        _openssl(
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(self.ca / "ca.crt"),
            "-CAkey",
            str(self.ca / "ca.key"),
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            str(self.boot / "bodycam-client.crt"),
        )
        shutil.copy(self.ca / "ca.crt", self.boot / "bodycam-ca.crt")

    def enrol(self) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, BODYCAM_DATA=str(self.data), BODYCAM_BOOT=str(self.boot), BODYCAM_GROUP="root")
        return subprocess.run([str(ENROL)], env=env, capture_output=True, text=True, check=False, timeout=60)

    @property
    def mqtt_enabled(self) -> bool:
        text = (self.data / "config" / "bodycam.toml").read_text()
        section = text.split("[mqtt]", 1)[1]
        return "\nenabled = true" in section


def test_certificate_for_this_device_is_installed_and_sync_enabled(tmp_path: Path) -> None:
    """The issued certificate and CA land in config/tls and fleet sync is switched on."""
    card = Card(tmp_path)
    card.issue(card.ca / "device.csr")
    result = card.enrol()
    assert result.returncode == 0, result.stderr
    assert f"enrolled {DEVICE}" in result.stdout
    tls = card.data / "config" / "tls"
    assert (tls / "client.crt").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert (tls / "ca.crt").exists()
    assert (tls / "client.crt").stat().st_mode & 0o777 == 0o640
    assert card.mqtt_enabled
    assert not (card.boot / "bodycam-client.crt").exists()  # removed from the card


def test_certificate_for_another_key_is_refused(tmp_path: Path) -> None:
    """A certificate issued to another device's key cannot give this device an identity."""
    card = Card(tmp_path)
    card.request(DEVICE, tmp_path / "other.key", tmp_path / "other.csr")
    card.issue(tmp_path / "other.csr")
    result = card.enrol()
    assert result.returncode != 0
    assert "issued for another key" in result.stderr
    assert not (card.data / "config" / "tls").exists()
    assert not card.mqtt_enabled


def test_certificate_naming_another_device_is_refused(tmp_path: Path) -> None:
    """The subject must be this device's id: the broker's ACL trusts it as the username."""
    card = Card(tmp_path)
    key = card.data / "keys" / "mqtt.key"
    _openssl(
        "req", "-new", "-key", str(key), "-subj", "/CN=BC-SOMEONE-ELSE", "-out", str(tmp_path / "wrong.csr")
    )
    card.issue(tmp_path / "wrong.csr")
    result = card.enrol()
    assert result.returncode != 0
    assert "BC-SOMEONE-ELSE" in result.stderr
    assert not card.mqtt_enabled


def test_certificate_from_another_ca_is_refused(tmp_path: Path) -> None:
    """A certificate that does not chain to the CA supplied with it is not installed."""
    card = Card(tmp_path)
    card.issue(card.ca / "device.csr")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(tmp_path / "rogue.key"),
        "-out",
        str(card.boot / "bodycam-ca.crt"),
        "-subj",
        "/CN=rogue CA",
        "-days",
        "30",
    )
    result = card.enrol()
    assert result.returncode != 0
    assert "not signed by" in result.stderr
    assert not card.mqtt_enabled
