#!/bin/bash -e
# Chroot side of the bodycam stage: the service user, the hardware interfaces, the data
# partition, and the units. Runs inside the target root filesystem (pi-gen's on_chroot).

# --- the service user: no login, no home, only the device groups it needs ----------------
for group in gpio i2c; do
	groupadd -f -r "$group"
done
if ! id bodycam >/dev/null 2>&1; then
	useradd --system --user-group --no-create-home --home-dir /var/lib/bodycam \
		--shell /usr/sbin/nologin --comment "body-worn recorder agent" bodycam
fi
# video: camera, ISP, encoder, dma_heap · gpio: button and indicators · i2c: fuel gauge ·
# dialout: GPS UART · audio: microphone. Nothing else (no sudo, no adm, no netdev).
usermod --groups video,gpio,i2c,dialout,audio bodycam

# --- hardware interfaces in config.txt ------------------------------------------------------
config=/boot/firmware/config.txt
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
# (serial0 there names the debug connector), so set gps.port = "/dev/ttyAMA0" on a Pi 5.
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
systemctl disable hciuart.service 2>/dev/null || true
# The serial console would share the GPS port: take it off the kernel command line.
sed -i -E 's/console=serial0,[0-9]+ ?//' /boot/firmware/cmdline.txt
# Raspberry Pi OS's first boot grows the root partition over the whole card. Here the data
# partition follows the root partition and bodycam-growdata grows *it* instead.
sed -i -E 's| ?init=/usr/lib/raspberrypi-sys-mods/firstboot||' /boot/firmware/cmdline.txt

# --- data partition -------------------------------------------------------------------------
# Evidence lives on its own ext4 partition (label bodycam-data, added by build.sh):
# noatime (no write per read), commit=5 (journal commit every 5 s: at most 5 s of metadata
# at risk on a power cut, and the agent fsyncs evidence itself), nodev/nosuid/noexec (data,
# never code). nofail keeps a card with a damaged data partition bootable for diagnosis;
# the agent itself refuses to run without the mount (RequiresMountsFor= and
# AssertPathIsMountPoint= in bodycam.service), so nothing is ever recorded onto the root
# filesystem by accident. errors=remount-ro stops writing at the first sign of corruption.
install -d -m 0750 /var/lib/bodycam
if ! grep -q 'LABEL=bodycam-data' /etc/fstab; then
	printf '%s\n' 'LABEL=bodycam-data  /var/lib/bodycam  ext4  defaults,noatime,commit=5,nodev,nosuid,noexec,errors=remount-ro,nofail,x-systemd.device-timeout=20s  0  2' >>/etc/fstab
fi
# The configuration the agent reads is per device and lives on the data partition (the root
# filesystem becomes read-only); bodycam-provision writes it at first boot.
ln -sfn /var/lib/bodycam/config/bodycam.toml /etc/bodycam/bodycam.toml

# --- units ----------------------------------------------------------------------------------
systemctl enable bodycam-growdata.service bodycam-provision.service bodycam-enrol.service \
	bodycam.service
systemctl enable chrony.service
