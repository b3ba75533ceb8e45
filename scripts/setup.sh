#!/usr/bin/env bash
# Set up a fresh Debian / Raspberry Pi OS machine for bodycam-agent: system packages, then a
# virtual environment in .venv with the agent installed (editable) and its tools.
#
#   scripts/setup.sh          # runtime + test tools (what the README's two commands use)
#
# Idempotent: packages already present are not reinstalled. On a Raspberry Pi the venv sees
# the system's picamera2/libcamera bindings (--system-site-packages), which pip cannot build.
set -euo pipefail
cd "$(dirname "$0")/.."

PI_PACKAGES=(python3-picamera2 python3-lgpio)   # libcamera + GPIO bindings pip cannot build
APT_PACKAGES=(
  python3-venv python3-dev build-essential pkg-config
  portaudio19-dev libasound2-plugins alsa-utils   # pyaudio build + ALSA file/null PCMs
  ffmpeg                                          # ffprobe checks media in tests and benches
  age openssl                                     # independent checks of our crypto
  mosquitto mosquitto-clients                     # real broker for the MQTT tests
  shellcheck systemd                              # image-build/check.sh
  iproute2 strace fdisk                           # network-cut, crash-consistency, partition tests
  fuse3                                           # power-cut file system (tests/tools/dropfs.py)
  postgresql                                      # shared station index (tests/station run initdb)
  chromium                                        # console tests (Playwright drives this browser)
)

if grep -qs "Raspberry Pi" /proc/device-tree/model; then
  APT_PACKAGES+=("${PI_PACKAGES[@]}")
fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The broker must not run as a system service here: tests start their own on loopback.
if command -v systemctl >/dev/null && systemctl is-active --quiet mosquitto 2>/dev/null; then
  echo "setup: note: a system mosquitto is running; tests use their own brokers on free ports"
fi

PYTHON=${PYTHON:-python3}
VENV_ARGS=()
if grep -qs "Raspberry Pi" /proc/device-tree/model; then
  VENV_ARGS+=(--system-site-packages)   # picamera2 + libcamera come from Raspberry Pi OS
fi
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv "${VENV_ARGS[@]}" .venv
fi
EXTRAS="dev"
grep -qs "Raspberry Pi" /proc/device-tree/model && EXTRAS="dev,pi"
# pip is chatty (build back-end notices); keep its log, show it only if something fails.
if ! { .venv/bin/python -m pip install -q --upgrade pip &&
       .venv/bin/python -m pip install -q -e ".[${EXTRAS}]"; } > .venv/pip.log 2>&1; then
  cat .venv/pip.log >&2
  echo "setup: installing the Python packages failed (log above)" >&2
  exit 1
fi
echo "setup: ready (.venv)"
