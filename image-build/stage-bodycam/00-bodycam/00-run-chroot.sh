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

# --- hardware interfaces: config.txt and cmdline.txt are edited by boot-config.sh (00-run.sh)
systemctl disable hciuart.service 2>/dev/null || true

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
