#!/bin/bash
# Opt-in smoke test of the device installation under full-system emulation (no Pi needed).
#
# Builds a Debian bookworm arm64 root filesystem with the agent installed the way the image
# installs it (venv with system site packages, the same systemd units and first-boot
# scripts), boots it with qemu-system-aarch64 on the "virt" machine, and checks over the
# serial console that, in simulator mode, the service is provisioned, reaches READY
# (Type=notify), and records a segment onto the separate data partition.
#
# It never registers binfmt handlers: nothing arm64 runs on the host. debootstrap only
# downloads and unpacks (--foreign); its second stage, the venv and the pip install run
# inside the emulated machine at its first boot. The kernel is Debian's linux-image-arm64,
# booted directly; a small busybox initramfs made on the host loads the virtio and ext4
# modules (they are not built in) and runs that first-boot setup before handing over to
# systemd.
#
# Needs root (debootstrap), network access to a Debian mirror and to PyPI (arm64 wheels are
# downloaded on the host; the guest needs no network), and these packages:
#   debootstrap qemu-system-arm qemu-utils e2fsprogs fdisk cpio kmod
# Takes 20-60 minutes under emulation. Prints "BODYCAM-SMOKE: PASS" and exits 0 on success.
#
# Usage: sudo image-build/qemu-smoke.sh [--work DIR] [--timeout SECONDS] [--keep]
#   env: DEBIAN_MIRROR (default http://deb.debian.org/debian), PYTHON (for pip download)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
files="$here/stage-bodycam/00-bodycam/files"
work="$here/work/qemu"
timeout_s=3600
keep=0
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
python=${PYTHON:-python3}

die() { echo "qemu-smoke: $*" >&2; exit 1; }
say() { echo "qemu-smoke: $*"; }

while (( $# )); do
  case $1 in
    --work) work=${2:?}; shift 2 ;;
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
(( EUID == 0 )) || die "debootstrap needs root"
for tool in debootstrap qemu-system-aarch64 mkfs.ext4 sfdisk cpio modinfo dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool is missing (see the header of this script)"
done
mkdir -p "$work"
work=$(cd "$work" && pwd)
rootfs="$work/rootfs"

# --- 1. root filesystem, first stage only ---------------------------------------------------------
packages=systemd,systemd-sysv,udev,kmod,linux-image-arm64,busybox-static,python3,python3-venv
packages+=,python3-pyaudio,openssl,ca-certificates,util-linux,fdisk,e2fsprogs
if [[ ! -f $rootfs/debootstrap/debootstrap && ! -x $rootfs/opt/bodycam/venv/bin/bodycam ]]; then
  rm -rf "$rootfs"
  say "debootstrap (first stage) from $mirror"
  debootstrap --foreign --arch=arm64 --variant=minbase --include="$packages" \
    bookworm "$rootfs" "$mirror"
fi
archives="$rootfs/var/cache/apt/archives"

# --- 2. kernel and initramfs ----------------------------------------------------------------------------
rm -rf "$work/kernel" "$work/initramfs"
mkdir -p "$work/kernel" "$work/initramfs"
kdeb=$(find "$archives" -name 'linux-image-[0-9]*-arm64_*.deb' | head -n 1)
[[ -n $kdeb ]] || die "no linux-image deb in $archives"
dpkg-deb -x "$kdeb" "$work/kernel"
kver=$(basename "$(find "$work/kernel/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n 1)")
vmlinuz="$work/kernel/boot/vmlinuz-$kver"
[[ -f $vmlinuz ]] || die "no kernel image in $kdeb"

bdeb=$(find "$archives" -name 'busybox-static_*.deb' | head -n 1)
[[ -n $bdeb ]] || die "no busybox-static deb in $archives"
dpkg-deb -x "$bdeb" "$work/busybox"
ird="$work/initramfs"
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,modules}
cp "$work/busybox/bin/busybox" "$ird/bin/busybox"
for applet in sh mount umount insmod sleep switch_root chroot mkdir cat echo ls; do
  ln -sf busybox "$ird/bin/$applet"
done
modroot="$work/kernel/lib/modules/$kver"
order=()
add_module() {  # add_module NAME: dependencies first, each once
  local name=$1 path dep
  path=$(find "$modroot" -name "$name.ko*" | head -n 1)
  [[ -n $path ]] || return 0   # built in
  [[ " ${order[*]} " == *" $(basename "$path") "* ]] && return 0
  for dep in $(modinfo -F depends "$path" | tr ',' ' '); do add_module "$dep"; done
  cp "$path" "$ird/modules/"
  order+=("$(basename "$path")")
}
for m in virtio_mmio virtio_blk crc32c_generic crc16 ext4; do add_module "$m"; done
{
  echo '#!/bin/sh'
  echo '# First stage of every boot of the smoke-test machine: modules, root, first-boot setup.'
  echo 'mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev'
  for m in "${order[@]}"; do echo "insmod /modules/$m"; done
  cat <<'INIT'
i=0; while [ ! -b /dev/vdb ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
# virtio-mmio disks are numbered in no promised order: the root is the one with an OS in it.
for disk in /dev/vda /dev/vdb; do
  mount -t ext4 -o rw "$disk" /newroot 2>/dev/null || continue
  [ -e /newroot/etc/os-release ] && break
  umount /newroot
done
[ -e /newroot/etc/os-release ] || { echo "BODYCAM-SMOKE: FAIL cannot find the root disk"; exec sh; }
if [ -x /newroot/opt/bodycam/smoke/firstboot ]; then
  mount --bind /proc /newroot/proc; mount --bind /sys /newroot/sys; mount --bind /dev /newroot/dev
  chroot /newroot /opt/bodycam/smoke/firstboot
  umount /newroot/dev /newroot/sys /newroot/proc
fi
umount /proc /sys
exec switch_root /newroot /sbin/init
INIT
} >"$ird/init"
chmod +x "$ird/init"
(cd "$ird" && find . | cpio --quiet -o -H newc | gzip -1) >"$work/initrd.gz"

# --- 3. the agent and its arm64 wheels --------------------------------------------------------------
say "building the agent wheel and downloading arm64 wheels of its dependencies"
rm -rf "$work/wheelhouse"
# From a copy of the repository's own files: the work directory (pi-gen's root
# filesystems) must not be walked by the build backend's package discovery.
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$repo" && while IFS= read -r -d '' f; do
       if [[ -f $f ]]; then cp --parents -- "$f" "$src/"; fi
     done)
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheelhouse" "$src"
wheel=$(find "$work/wheelhouse" -name 'bodycam_agent-*.whl' | head -n 1)
# Dependencies from the wheel's metadata, less PyAudio: the guest uses Debian's
# python3-pyaudio (no arm64 wheel exists on PyPI), as the device image does.
mapfile -t deps < <("$python" - "$wheel" <<'PY'
import re, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    for line in z.read(meta).decode().splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            req = line.split(":", 1)[1].split(";")[0].strip()
            if not re.match(r"(?i)pyaudio\b", req):
                print(req)
PY
)
"$python" -m pip download --quiet --dest "$work/wheelhouse" --only-binary=:all: \
  --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none \
  --platform manylinux_2_36_aarch64 --platform manylinux_2_34_aarch64 \
  --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64 \
  --platform manylinux2014_aarch64 --platform any "${deps[@]}"

# --- 4. what the first boot installs -------------------------------------------------------------------
smoke="$rootfs/opt/bodycam/smoke"
rm -rf "$smoke" "$rootfs/opt/bodycam/wheelhouse"
mkdir -p "$smoke/files" "$rootfs/opt/bodycam/wheelhouse"
cp "$work"/wheelhouse/*.whl "$rootfs/opt/bodycam/wheelhouse/"
cp "$files"/* "$smoke/files/"
# The smoke device records from the simulator and encrypts to a throwaway recipient.
recipient=age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
sed -e '/^[[:space:]]*#/!s|@RECIPIENTS@|"'"$recipient"'"|' \
    -e '/^[[:space:]]*#/!s|@MQTT_URL@|mqtts://localhost:8883|' \
    -e 's/^kind = "pi"/kind = "sim"/' "$files/bodycam.toml.in" >"$smoke/files/bodycam.toml.in"
# Emulation runs some 20-50 times slower than a Pi: a small picture, short segments, and
# stall windows sized for it.
cat >>"$smoke/files/bodycam.toml.in" <<'TOML'

[video]
width = 640
height = 360
fps = 10
bitrate = 500000
gop = 10

[audio]
enabled = false

[recording]
prerecord_s = 5
segment_s = 10
stall_after_s = 10.0
TOML
cat >"$smoke/firstboot" <<'FIRSTBOOT'
#!/bin/sh
# Runs once, chrooted from the initramfs: what pi-gen's stage does on a real image.
set -e
marker=/opt/bodycam/smoke/installed
[ -f "$marker" ] && exit 0
exec >/dev/console 2>&1
echo "BODYCAM-SMOKE: first boot setup starts"
if [ -x /debootstrap/debootstrap ]; then
  # The kernel boots with the host-made initramfs: skip building Debian's (many minutes
  # under emulation; the kernel's postinst hook honours INITRD=No).
  INITRD=No /debootstrap/debootstrap --second-stage
fi
f=/opt/bodycam/smoke/files
groupadd -f -r gpio; groupadd -f -r i2c
id bodycam >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
  --home-dir /var/lib/bodycam --shell /usr/sbin/nologin bodycam
usermod --groups video,gpio,i2c,dialout,audio bodycam
python3 -m venv --system-site-packages /opt/bodycam/venv
/opt/bodycam/venv/bin/pip install --no-index --find-links /opt/bodycam/wheelhouse \
  --disable-pip-version-check bodycam-agent
install -d /usr/lib/bodycam /usr/share/bodycam /etc/bodycam /etc/systemd/journald.conf.d
install -m 644 "$f"/*.service /etc/systemd/system/
install -m 755 "$f/bodycam-provision" "$f/bodycam-growdata" "$f/bodycam-enrol" /usr/lib/bodycam/
install -m 644 "$f/bodycam.toml.in" /usr/share/bodycam/
install -m 644 "$f/journald-bodycam.conf" /etc/systemd/journald.conf.d/bodycam.conf
ln -sfn /var/lib/bodycam/config/bodycam.toml /etc/bodycam/bodycam.toml
install -d -m 0750 /var/lib/bodycam
echo 'LABEL=smoke-root / ext4 defaults,noatime 0 1' >/etc/fstab
echo 'LABEL=bodycam-data /var/lib/bodycam ext4 defaults,noatime,commit=5,nodev,nosuid,noexec,errors=remount-ro,nofail,x-systemd.device-timeout=20s 0 2' >>/etc/fstab
# The one difference from a device: simulated hardware.
install -d /etc/systemd/system/bodycam.service.d
printf '%s\n' '[Service]' 'ExecStart=' \
  'ExecStart=/opt/bodycam/venv/bin/bodycam run --hw sim --config /etc/bodycam/bodycam.toml --data-dir /var/lib/bodycam' \
  '# emulation is much slower than a Pi' 'WatchdogSec=30' 'TimeoutStartSec=600' \
  >/etc/systemd/system/bodycam.service.d/smoke.conf
install -m 755 /opt/bodycam/smoke/check /usr/local/sbin/bodycam-smoke-check
cat >/etc/systemd/system/bodycam-smoke.service <<'UNIT'
[Unit]
Description=Smoke test: the recorder reaches READY and records a segment
After=bodycam.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/bodycam-smoke-check
StandardOutput=tty
StandardError=tty
TTYPath=/dev/ttyAMA0
[Install]
WantedBy=multi-user.target
UNIT
systemctl enable bodycam-growdata.service bodycam-provision.service bodycam.service bodycam-smoke.service
echo bodycam >/etc/hostname
touch "$marker"
echo "BODYCAM-SMOKE: first boot setup done"
FIRSTBOOT
cat >"$smoke/check" <<'CHECK'
#!/bin/bash
# Waits for the recorder to be started (READY=1), records ~15 s, and reports on the console.
report() { echo "BODYCAM-SMOKE: $*"; }
finish() {
  systemctl --no-pager status bodycam-growdata bodycam-provision bodycam | head -n 60
  journalctl --no-pager -u bodycam-provision -u bodycam -n 80
  report "$1"
  systemctl poweroff
  exit 0
}
for _ in $(seq 1 600); do
  state=$(systemctl show -p ActiveState --value bodycam.service)
  [[ $state == active ]] && break
  [[ $state == failed ]] && finish "FAIL bodycam.service failed before READY"
  sleep 1
done
[[ $state == active ]] || finish "FAIL bodycam.service not READY after 600 s (state $state)"
report "READY reached (bodycam.service active, Type=notify)"
findmnt /var/lib/bodycam && report "data partition mounted: $(df -h --output=size /var/lib/bodycam | tail -n 1)"
cat /boot/firmware/bodycam-enrol.json 2>/dev/null || true
ctl=/opt/bodycam/venv/bin/bodycam
"$ctl" ctl press --data-dir /var/lib/bodycam || report "ctl press failed"
sleep 20
"$ctl" ctl status --data-dir /var/lib/bodycam || true
"$ctl" ctl hold --data-dir /var/lib/bodycam || report "ctl hold failed"
sleep 5
segments=$(find /var/lib/bodycam -type f -size +4k -newer /var/lib/bodycam/.bodycam-provisioned \
  ! -path '*/keys/*' ! -path '*/config/*' | head -n 20)
printf '%s\n' "$segments"
[[ -n $segments ]] || finish "FAIL no recorded data on the data partition"
systemctl is-active --quiet bodycam.service || finish "FAIL bodycam.service stopped while recording"
finish "PASS"
CHECK
chmod +x "$smoke/firstboot" "$smoke/check"

# --- 5. disks -----------------------------------------------------------------------------------------------
say "making the disks"
rm -f "$work/root.img" "$work/data.img"
mkfs.ext4 -q -F -L smoke-root -d "$rootfs" "$work/root.img" 4G
# The data disk looks like the card's tail: one 256 MiB partition labelled bodycam-data in a
# 768 MiB disk, which bodycam-growdata must grow.
truncate -s 768M "$work/data.img"
echo "start=16384, size=524288, type=83" | sfdisk --quiet "$work/data.img"
mkfs.ext4 -q -F -L bodycam-data "$work/data.part" 256M
dd if="$work/data.part" of="$work/data.img" bs=1M seek=8 conv=notrunc status=none
rm -f "$work/data.part"

# --- 6. boot ---------------------------------------------------------------------------------------------------
say "booting (timeout ${timeout_s} s); console log: $work/console.log"
set +e
timeout --foreground "$timeout_s" nice -n 10 qemu-system-aarch64 -M virt -cpu cortex-a57 -smp 2 -m 2048 \
  -nographic -nic none -no-reboot -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
  -append "console=ttyAMA0 rw panic=-1" \
  -drive if=none,id=root,file="$work/root.img",format=raw -device virtio-blk-device,drive=root \
  -drive if=none,id=data,file="$work/data.img",format=raw -device virtio-blk-device,drive=data \
  </dev/null 2>&1 | tee "$work/console.log" | grep --line-buffered 'BODYCAM-SMOKE'
status=${PIPESTATUS[0]}
set -e
(( keep )) || rm -f "$work/root.img"
if grep -q 'BODYCAM-SMOKE: PASS' "$work/console.log"; then
  say "PASS"
  exit 0
fi
say "FAIL (qemu exit status $status); see $work/console.log"
exit 1
