#!/bin/bash
# Boot configuration of a recorder: enable the camera, I2C and a clean UART in config.txt,
# and free the UART and the card's free space in cmdline.txt.
#
# Usage: boot-config.sh BOOT_DIR [FUEL_GAUGE]   (BOOT_DIR: the image's /boot/firmware;
# FUEL_GAUGE: none (default) or max17040). Run by 00-run.sh on the build host; idempotent, so
# a re-run of the stage leaves the files as one run does.
set -euo pipefail

boot=${1:?usage: boot-config.sh BOOT_DIR [none|max17040]}
fuel_gauge=${2:-none}
case $fuel_gauge in
  none|max17040) ;;
  *) echo "boot-config.sh: unknown fuel gauge '$fuel_gauge' (none or max17040)" >&2; exit 2 ;;
esac
config="$boot/config.txt"
[[ -f $config && -f $boot/cmdline.txt ]] || { echo "boot-config.sh: no config.txt/cmdline.txt in $boot" >&2; exit 1; }

# set_config NAME=VALUE: replace the first existing (maybe commented-out) line for NAME, or
# append it under an [all] filter so that it applies to every model. NAME is everything
# before the last '=': "dtparam=i2c_arm=on" sets dtparam=i2c_arm, not every dtparam line.
set_config() {
  local name=${1%=*}
  if grep -qE "^#?[[:space:]]*${name}=" "$config"; then
    sed -i -E "0,/^#?[[:space:]]*${name}=.*/s||$1|" "$config"
  else
    printf '[all]\n%s\n' "$1" >>"$config"
  fi
}
set_config camera_auto_detect=1
set_config dtparam=i2c_arm=on
set_config enable_uart=1
# The GPS receiver is wired to GPIO14/15. On the Pi 3, 4 and Zero W/2 W the good UART (PL011)
# is taken by Bluetooth and the pins get the mini-UART, whose baud rate follows the VPU clock
# and drifts under load: NMEA arrives garbled. disable-bt gives the PL011 back to GPIO14/15
# (/dev/serial0 -> ttyAMA0); a body camera has no use for Bluetooth. On the Pi 5 the header
# UART is not shared with Bluetooth but is off by default: uart0=on makes it /dev/ttyAMA0
# (serial0 there names the debug connector); bodycam-provision writes that port on a Pi 5.
if ! grep -q '^dtoverlay=disable-bt' "$config"; then
  cat >>"$config" <<'EOF_CONFIG'

# bodycam: a clean UART on GPIO14/15 for the GPS receiver (see image-build/README.md)
[all]
dtoverlay=disable-bt
[pi5]
dtparam=uart0=on
[all]
EOF_CONFIG
fi
# A MAX1704x fuel gauge appears under /sys/class/power_supply only when the device tree
# declares it: the i2c-sensor overlay's max17040 parameter adds "maxim,max17040" at 0x36 on the
# header's I2C bus, and max17040_battery (a module in the Raspberry Pi kernels) binds to it.
if [[ $fuel_gauge == max17040 ]] && ! grep -q '^dtoverlay=i2c-sensor,max17040' "$config"; then
  printf '\n# bodycam: MAX1704x fuel gauge on I2C-1 (image-build/build.sh --fuel-gauge)\n[all]\n%s\n' \
    'dtoverlay=i2c-sensor,max17040' >>"$config"
fi
# The serial console would share the GPS port: take it off the kernel command line.
sed -i -E 's/console=serial0,[0-9]+ ?//' "$boot/cmdline.txt"
# Raspberry Pi OS's first boot grows the root partition over the whole card. Here the data
# partition follows the root partition and bodycam-growdata grows *it* instead.
sed -i -E 's| ?init=/usr/lib/raspberrypi-sys-mods/firstboot||' "$boot/cmdline.txt"
