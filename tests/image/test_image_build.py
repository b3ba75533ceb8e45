"""The image's build tooling produces what the device needs: a valid configuration, a correct
pi-gen configuration and stage, and the evidence data partition."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import load_config
from hw.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
IMAGE_BUILD = REPO / "image-build"
FILES = IMAGE_BUILD / "stage-bodycam" / "00-bodycam" / "files"
RECIPIENT = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"


def _fill(template: str, **values: str) -> str:
    """Substitute placeholders on non-comment lines, as build.sh and bodycam-provision do."""
    out = []
    for line in template.splitlines(keepends=True):
        filled = line
        if not line.lstrip().startswith("#"):
            for name, value in values.items():
                filled = filled.replace(f"@{name}@", value)
        out.append(filled)
    return "".join(out)


def _unit(name: str) -> dict[str, list[str]]:
    """A systemd unit's directives, every value kept (DeviceAllow= repeats)."""
    directives: dict[str, list[str]] = {}
    for raw in (FILES / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "[")):
            continue
        key, _, value = line.partition("=")
        directives.setdefault(key, []).append(value)
    return directives


# --- the shipped configuration ----------------------------------------------------------------
def test_shipped_template_is_a_valid_pi_configuration(tmp_path: Path) -> None:
    """Filled in as build time and first boot fill it, the template passes the agent's schema."""
    text = _fill(
        (FILES / "bodycam.toml.in").read_text(),
        RECIPIENTS=f'"{RECIPIENT}"',
        MQTT_URL="mqtts://fleet.example.org:8883",
        DEVICE_ID="BC-10000000ABCDEF12",
        GPS_PORT="/dev/ttyAMA0",
    )
    assert "@" not in "".join(line for line in text.splitlines() if not line.startswith("#"))
    path = tmp_path / "bodycam.toml"
    path.write_text(text)
    cfg = load_config(path)
    assert cfg.device.id == "BC-10000000ABCDEF12"
    assert cfg.hardware.kind == "pi"
    assert cfg.evidence.encrypt and cfg.evidence.recipients == [RECIPIENT]
    assert cfg.mqtt.enabled is False  # until bodycam-enrol installs a certificate
    assert cfg.mqtt.keyfile.startswith("/var/lib/bodycam/keys/")
    assert cfg.gps.port == "/dev/ttyAMA0"


def test_template_without_a_recipient_is_refused_on_a_pi(tmp_path: Path) -> None:
    """An image built without an agency recipient could not record: build.sh must insist."""
    text = _fill(
        (FILES / "bodycam.toml.in").read_text(), RECIPIENTS="", MQTT_URL="mqtts://h:8883", DEVICE_ID="BC-1",
        GPS_PORT="/dev/serial0",
    )
    path = tmp_path / "bodycam.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"evidence\.recipients"):
        load_config(path)


# --- the units' contract with the agent -------------------------------------------------------
def test_agent_unit_is_supervised_by_the_watchdog() -> None:
    """Type=notify with a watchdog, restarts on failure, and only the main process may notify."""
    unit = _unit("bodycam.service")
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["WatchdogSec"] == ["10"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["ExecStart"] == [
        "/opt/bodycam/venv/bin/bodycam run --hw pi --config /etc/bodycam/bodycam.toml "
        "--data-dir /var/lib/bodycam"
    ]


def test_agent_unit_writes_only_evidence_and_reaches_only_its_devices() -> None:
    """Read-only system, one writable path, no capabilities, a closed device list."""
    unit = _unit("bodycam.service")
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == ["/var/lib/bodycam"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["User"] == ["bodycam"]
    assert unit["DevicePolicy"] == ["closed"]
    allowed = {v.split()[0] for v in unit["DeviceAllow"]}
    assert allowed == {
        "char-video4linux",
        "char-media",
        "char-dma_heap",
        "char-i2c",
        "char-ttyAMA",
        "char-ttyS",
        "char-ttyUSB",
        "char-ttyACM",
        "char-gpiochip",
        "char-alsa",
        "/dev/vcio",
    }
    assert "/var/lib/bodycam" in unit["RequiresMountsFor"]
    assert unit["AssertPathIsMountPoint"] == ["/var/lib/bodycam"]


def test_provisioning_runs_before_the_agent_until_it_has_completed() -> None:
    """The agent requires provisioning; provisioning is skipped once its marker exists."""
    agent = _unit("bodycam.service")
    provision = _unit("bodycam-provision.service")
    assert "bodycam-provision.service" in agent["Requires"]
    assert "bodycam-provision.service" in " ".join(agent["After"])
    assert provision["Type"] == ["oneshot"]
    assert provision["ConditionPathExists"] == ["!/var/lib/bodycam/.bodycam-provisioned"]
    marker = re.search(r'touch "\$data/(\.bodycam-provisioned)"', (FILES / "bodycam-provision").read_text())
    assert marker is not None  # the script's last step writes what the condition tests


# --- the data partition ---------------------------------------------------------------------------
needs_disk_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("sfdisk", "partx", "mkfs.ext4", "e2fsck", "e2label")),
    reason="needs fdisk (sfdisk), util-linux (partx) and e2fsprogs",
)


def _pi_gen_like_image(path: Path) -> None:
    """Two partitions laid out like pi-gen's export: FAT boot at 8 MiB, ext4 root at 16 MiB."""
    with path.open("wb") as f:
        f.truncate(48 * 1024 * 1024)
    table = "label: dos\nstart=16384, size=16384, type=c\nstart=32768, size=65536, type=83\n"
    subprocess.run(["sfdisk", "--quiet", str(path)], input=table, text=True, check=True)


@needs_disk_tools
def test_data_partition_is_appended_as_labelled_ext4(tmp_path: Path) -> None:
    """A third, aligned partition holds a clean ext4 filesystem labelled bodycam-data."""
    image = tmp_path / "disk.img"
    _pi_gen_like_image(image)
    subprocess.run(
        [str(IMAGE_BUILD / "add-data-partition.sh"), str(image), "64"], check=True, capture_output=True
    )

    rows = subprocess.run(
        ["partx", "--noheadings", "--raw", "--output", "NR,START,SECTORS", str(image)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    parts = [tuple(int(x) for x in row.split()) for row in rows if row.strip()]
    assert len(parts) == 3
    nr, start, sectors = parts[2]
    assert (nr, sectors) == (3, 64 * 2048)
    assert start * 512 % (8 * 1024 * 1024) == 0
    assert start >= 32768 + 65536  # after the root partition
    assert image.stat().st_size == start * 512 + sectors * 512

    fs = tmp_path / "p3.img"
    with image.open("rb") as src, fs.open("wb") as dst:
        src.seek(start * 512)
        dst.write(src.read(sectors * 512))
    label = subprocess.run(["e2label", str(fs)], check=True, capture_output=True, text=True)
    assert label.stdout.strip() == "bodycam-data"
    subprocess.run(["e2fsck", "-f", "-n", str(fs)], check=True, capture_output=True)


@needs_disk_tools
def test_data_partition_is_added_only_once(tmp_path: Path) -> None:
    """Running the post-processing twice is refused instead of stacking partitions."""
    image = tmp_path / "disk.img"
    _pi_gen_like_image(image)
    script = str(IMAGE_BUILD / "add-data-partition.sh")
    subprocess.run([script, str(image), "64"], check=True, capture_output=True)
    again = subprocess.run([script, str(image), "64"], check=False, capture_output=True, text=True)
    assert again.returncode != 0
    assert "exactly the boot and root partitions" in again.stderr


# --- build.sh up to running pi-gen ----------------------------------------------------------------
def _build(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    pi_gen = tmp_path / "pi-gen"
    (pi_gen / "stage2").mkdir(parents=True, exist_ok=True)
    (pi_gen / "build.sh").write_text("#!/bin/sh\nexit 1\n")
    (pi_gen / "build.sh").chmod(0o755)
    # A stand-in wheel: building the real one is pip's job (qemu-smoke.sh exercises it).
    wheel = tmp_path / "bodycam_agent-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip archive
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(
        [
            str(IMAGE_BUILD / "build.sh"),
            "--stage-only",
            "--pi-gen",
            str(pi_gen),
            "--work",
            str(tmp_path / "work"),
            "--wheel",
            str(wheel),
            *args,
        ],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=50,
    )


@pytest.mark.timeout(60)
def test_build_prepares_pi_gen_with_the_stage_wheel_and_config(tmp_path: Path) -> None:
    """--stage-only leaves a pi-gen tree ready to run: stage, wheel, template, config."""
    result = _build(tmp_path, "--recipient", RECIPIENT, "--mqtt-url", "mqtts://fleet.example:8883")
    assert result.returncode == 0, result.stderr
    pi_gen = tmp_path / "pi-gen"
    files = pi_gen / "stage-bodycam" / "00-bodycam" / "files"
    assert [w.name.split("-")[0] for w in (files / "wheels").glob("*.whl")] == ["bodycam_agent"]
    template = (files / "bodycam.toml.in").read_text()
    assert f'recipients = ["{RECIPIENT}"]' in template
    assert 'url = "mqtts://fleet.example:8883"' in template
    assert 'id = "@DEVICE_ID@"' in template  # filled in on the device, not in the image
    assert (files / "readonly-root").exists()
    assert (pi_gen / "stage2" / "SKIP_IMAGES").exists()
    config = (pi_gen / "config").read_text()
    assert "STAGE_LIST='stage0 stage1 stage2 stage-bodycam'" in config
    assert "RELEASE=bookworm" in config
    assert "DISABLE_FIRST_BOOT_USER_RENAME=1" in config
    assert "ENABLE_SSH=0" in config  # no key given: no remote login at all
    assert (pi_gen / "config").stat().st_mode & 0o077 == 0  # it holds a password


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no agency recipient"),
        (("--recipient", "age1notakey"), "is not an age X25519 recipient"),
        (("--recipient", RECIPIENT, "--data-mib", "10"), "--data-mib"),
    ],
)
def test_build_refuses_an_image_that_could_not_work(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """Mistakes are caught before anything slow runs, with the reason named."""
    result = _build(tmp_path, *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "work" / "wheels").exists()


# --- boot configuration -------------------------------------------------------------------------
# Shaped like Raspberry Pi OS's config.txt: commented-out dtparams, model filters, and a
# last section that applies to one model only.
CONFIG_TXT = """\
# For more options and information see http://rptl.io/configtxt
#dtparam=i2c_arm=on
#dtparam=i2s=on
#dtparam=spi=on
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
dtoverlay=vc4-kms-v3d

[cm4]
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host
"""
CMDLINE_TXT = (
    "console=serial0,115200 console=tty1 root=ROOTDEV rootfstype=ext4 fsck.repair=yes "
    "rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n"
)


def _effective(config: str) -> dict[str, list[str]]:
    """Lines in force per model filter section ([all], [pi5], ...), comments dropped."""
    sections: dict[str, list[str]] = {"all": []}
    current = "all"
    for raw in config.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
        else:
            sections[current].append(line)
    return sections


def _boot_config(tmp_path: Path, runs: int = 1, *args: str) -> tuple[str, str]:
    boot = tmp_path / "boot"
    boot.mkdir(parents=True)
    (boot / "config.txt").write_text(CONFIG_TXT)
    (boot / "cmdline.txt").write_text(CMDLINE_TXT)
    script = IMAGE_BUILD / "stage-bodycam" / "00-bodycam" / "boot-config.sh"
    for _ in range(runs):
        subprocess.run([str(script), str(boot), *args], check=True, capture_output=True)
    return (boot / "config.txt").read_text(), (boot / "cmdline.txt").read_text()


def test_boot_config_enables_camera_i2c_and_the_gps_uart_for_every_model(tmp_path: Path) -> None:
    """The settings land in [all], not in the trailing [cm5] section; other dtparams stay."""
    config, _ = _boot_config(tmp_path)
    sections = _effective(config)
    assert {
        "camera_auto_detect=1",
        "dtparam=i2c_arm=on",
        "enable_uart=1",
        "dtoverlay=disable-bt",
        "dtparam=audio=on",
    } <= set(sections["all"])
    assert "dtparam=uart0=on" in sections["pi5"]
    assert sections["cm5"] == ["dtoverlay=dwc2,dr_mode=host"]
    assert "#dtparam=spi=on" in config  # unrelated dtparams are left alone


def test_boot_config_frees_the_uart_and_the_card_and_is_idempotent(tmp_path: Path) -> None:
    """No serial console on the GPS port, no root expansion; a second run changes nothing."""
    once = _boot_config(tmp_path / "a")
    twice = _boot_config(tmp_path / "b", runs=2)
    assert once == twice
    _, cmdline = once
    assert "console=serial0" not in cmdline
    assert "init=/usr/lib/raspberrypi-sys-mods/firstboot" not in cmdline
    assert cmdline.strip().endswith("rootwait quiet")


def test_fuel_gauge_overlay_is_a_build_option(tmp_path: Path) -> None:
    """--fuel-gauge max17040 declares the gauge in the device tree once, for every model;
    without it no gauge overlay is added (the kernel would not create a power_supply for it)."""
    plain, _ = _boot_config(tmp_path / "plain")
    assert "i2c-sensor" not in plain
    once, _ = _boot_config(tmp_path / "a", 1, "max17040")
    twice, _ = _boot_config(tmp_path / "b", 2, "max17040")
    assert once == twice
    sections = _effective(once)
    assert "dtoverlay=i2c-sensor,max17040" in sections["all"]
    assert "dtparam=i2c_arm=on" in sections["all"]
    script = IMAGE_BUILD / "stage-bodycam" / "00-bodycam" / "boot-config.sh"
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.txt").write_text(CONFIG_TXT)
    (tmp_path / "c" / "cmdline.txt").write_text(CMDLINE_TXT)
    wrong = subprocess.run([str(script), str(tmp_path / "c"), "bq27441"], capture_output=True,
                           text=True, check=False)
    assert wrong.returncode != 0 and "unknown fuel gauge" in wrong.stderr


@pytest.mark.timeout(60)
def test_build_passes_the_fuel_gauge_to_the_stage(tmp_path: Path) -> None:
    """build.sh records the chosen gauge for the stage, and refuses one the Pi kernels lack."""
    result = _build(tmp_path, "--recipient", RECIPIENT, "--fuel-gauge", "max17040")
    assert result.returncode == 0, result.stderr
    files = tmp_path / "pi-gen" / "stage-bodycam" / "00-bodycam" / "files"
    assert (files / "fuel-gauge").read_text().strip() == "max17040"
    refused = _build(tmp_path / "x", "--recipient", RECIPIENT, "--fuel-gauge", "bq27xxx")
    assert refused.returncode != 0 and "no driver in the Raspberry Pi kernels" in refused.stderr
    run = (IMAGE_BUILD / "stage-bodycam" / "00-bodycam" / "00-run.sh").read_text()
    assert './boot-config.sh "${ROOTFS_DIR}/boot/firmware" "${fuel_gauge}"' in run
