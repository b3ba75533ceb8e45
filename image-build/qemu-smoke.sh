#!/bin/bash
# Opt-in proof of the device installation under full-system emulation (no Pi needed).
#
# Builds a Debian bookworm arm64 system with the agent installed the way the image installs
# it (venv with system site packages and the distribution's numpy, the same systemd units,
# first-boot scripts and hardening), boots it with qemu-system-aarch64 on the "virt"
# machine, and inside the guest, in simulated-hardware mode: the data partition is grown and
# provisioned, bodycam.service reaches READY (Type=notify), one recording is made, the
# service is stopped (sealing it), and `bodycam verify` checks the data partition with the
# simulator's agency identity (plaintext hashes too). The verification report is copied out
# to the host (WORK/verify.json, WORK/verify.txt) and a timeline of the phases is printed.
#
# Nothing arm64 ever runs on the host (no binfmt handlers): debootstrap only downloads and
# unpacks (--foreign); its second stage and every pip install run inside the emulated
# machine. The kernel is Debian's linux-image-arm64, booted directly with a small busybox
# initramfs made on the host, which loads the virtio and ext4 modules and runs each layer's
# setup script (from a small "io" disk made with mkfs.ext4 -d) before systemd.
#
# Layers, cached under CACHE (default image-build/work/cache), each keyed by a hash of what
# it is made from, so a repeat run only re-installs the agent:
#   base-KEY/     debootstrap's second stage done in the guest: root.qcow2, vmlinuz, initrd.gz
#                 (KEY: suite, mirror, package list, the base recipe)
#   wheels-KEY/   the arm64 wheelhouse of the agent's dependencies, downloaded on the host
#                 (KEY: the dependency list from the agent wheel's metadata, pip's target)
#   venv-KEY.qcow2  qcow2 overlay on the base: /opt/bodycam/venv with those wheels installed
#                 in the guest (KEY: base key, wheels key, the venv recipe)
# Each run: a throwaway overlay on venv-KEY.qcow2, the agent wheel built from this checkout
# and installed into the venv in the guest (`pip install --no-deps` + `pip check`), the units
# installed as the pi-gen stage does, a fresh 768 MiB data disk.
#
# Needs root (debootstrap, device nodes in the root), network access to a Debian mirror and to
# PyPI (wheels are downloaded on the host; the guest has no network), and these packages:
#   debootstrap qemu-system-arm qemu-utils e2fsprogs fdisk cpio kmod
# Cold (empty cache): 20-40 minutes on 2 cores without KVM; warm: a few minutes.
# Prints "BODYCAM-SMOKE: PASS" and exits 0 on success.
#
# Usage: sudo image-build/qemu-smoke.sh [--fresh] [--tests] [--cache DIR] [--work DIR] [--timeout SECONDS] [--keep]
#   --fresh   empty the cache first (rebuild every layer)
#   --tests   also run `pytest tests/contract tests/evidence` inside the guest against the
#             installed agent (arm64); the output is copied to WORK/pytest-arm64.txt
#   env: DEBIAN_MIRROR (default http://deb.debian.org/debian), PYTHON (for pip on the host),
#        QEMU_NICE (default 19)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
files="$here/stage-bodycam/00-bodycam/files"
work="$here/work/qemu"
cache="$here/work/cache"
timeout_s=3600
keep=0
tests=0
fresh=0
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
python=${PYTHON:-python3}
qnice=${QEMU_NICE:-19}
suite=bookworm

die() { echo "qemu-smoke: $*" >&2; exit 1; }
say() { echo "qemu-smoke: $*"; }

while (( $# )); do
  case $1 in
    --fresh) fresh=1; shift ;;
    --cache) cache=${2:?}; shift 2 ;;
    --work) work=${2:?}; shift 2 ;;
    --timeout) timeout_s=${2:?}; shift 2 ;;
    --keep) keep=1; shift ;;
    --tests) tests=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done
(( EUID == 0 )) || die "debootstrap needs root"
for tool in debootstrap qemu-system-aarch64 qemu-img mkfs.ext4 debugfs sfdisk cpio modinfo dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool is missing (see the header of this script)"
done
(( fresh )) && rm -rf "$cache"
mkdir -p "$work" "$cache"
work=$(cd "$work" && pwd)
cache=$(cd "$cache" && pwd)

# --- timeline -----------------------------------------------------------------------------------
t0=$EPOCHREALTIME
marks=()
mark() {  # mark NAME: seconds since the start of this run
  local now=$EPOCHREALTIME
  marks+=("$1 $(awk -v a="$t0" -v b="$now" 'BEGIN { printf "%.1f", b - a }')")
}
timeline() {
  local prev=0 name at
  echo "qemu-smoke: timeline (seconds since start; phase length)"
  for m in "${marks[@]}"; do
    name=${m% *}; at=${m##* }
    awk -v n="$name" -v a="$at" -v p="$prev" 'BEGIN { printf "  %-56s %8.1f  %+8.1f\n", n, a, a - p }'
    prev=$at
  done
}
key() { sha256sum | cut -c1-16; }

# One boot of the emulated machine. boot NAME TIMEOUT ROOT [EXTRA-DISK...]: the io disk of
# this boot is $work/io.img; every console line containing BODYCAM-SMOKE is echoed and also
# marked on the timeline as it arrives ("BODYCAM-SMOKE: T <event>").
boot() {
  local name=$1 limit=$2 root=$3 line status
  shift 3
  local drives=(-drive "if=none,id=root,file=$root,format=qcow2,cache=unsafe,discard=unmap"
                -device "virtio-blk-device,drive=root"
                -drive "if=none,id=io,file=$work/io.img,format=raw,cache=unsafe"
                -device "virtio-blk-device,drive=io")
  local n=2 d
  for d in "$@"; do
    drives+=(-drive "if=none,id=d$n,file=$d,format=raw" -device "virtio-blk-device,drive=d$n")
    n=$((n + 1))
  done
  say "booting ($name, timeout ${limit} s); console log: $work/console-$name.log"
  set +e
  timeout --foreground "$limit" nice -n "$qnice" qemu-system-aarch64 -M virt -cpu cortex-a57 \
    -accel tcg,thread=multi -smp 2 -m 2048 -nographic -nic none -no-reboot \
    -kernel "$kernel" -initrd "$initrd" \
    -append "console=ttyAMA0 rw panic=-1 quiet smoke.disks=$n" "${drives[@]}" </dev/null 2>&1 \
    | tee "$work/console-$name.log" \
    | while IFS= read -r line; do
        line=${line%$'\r'}
        [[ $line == *BODYCAM-SMOKE* ]] || continue
        echo "$line"
        [[ $line == *"BODYCAM-SMOKE: T "* ]] && echo "${line#*BODYCAM-SMOKE: T }" >>"$work/events-$name"
        [[ $line == *"BODYCAM-SMOKE: T "* ]] && echo "$EPOCHREALTIME" >>"$work/events-$name"
      done
  status=${PIPESTATUS[0]}
  set -e
  if [[ -f $work/events-$name ]]; then
    local ev at
    while IFS= read -r ev && IFS= read -r at; do
      marks+=("$ev $(awk -v a="$t0" -v b="$at" 'BEGIN { printf "%.1f", b - a }')")
    done <"$work/events-$name"
    rm -f "$work/events-$name"
  fi
  return "$status"
}
io_get() {  # io_get PATH DEST: copy a file the guest left on the io disk (it may be empty)
  rm -f "$2"
  debugfs -R "dump $1 $2" "$work/io.img" >/dev/null 2>&1 && [[ -e $2 ]]
}
make_io() {  # make_io DIR: the io disk, DIR's content plus an out/ directory for the guest
  mkdir -p "$1/out"
  touch "$1/smoke-io"
  rm -f "$work/io.img"
  mkfs.ext4 -q -F -L smoke-io -d "$1" "$work/io.img" "$2"
}

# --- 1. base: debootstrap, second stage in the guest -------------------------------------------------
packages=systemd,systemd-sysv,udev,kmod,linux-image-arm64,busybox-static,python3,python3-venv
packages+=,python3-numpy,python3-pyaudio,openssl,age,ca-certificates,util-linux,fdisk,e2fsprogs
# Runs chrooted from the initramfs at the base's only boot, then the machine powers off.
read -r -d '' base_stage <<'STAGE' || true
#!/bin/sh
set -e
exec >/dev/console 2>&1
echo "BODYCAM-SMOKE: T base second stage starts"
# The kernel boots with the host-made initramfs: skip building Debian's (many minutes under
# emulation; the kernel's postinst hook honours INITRD=No).
INITRD=No /debootstrap/debootstrap --second-stage
rm -f /etc/dpkg/dpkg.cfg.d/smoke-unsafe-io
apt-get clean
rm -rf /var/lib/apt/lists/*
echo "BODYCAM-SMOKE: T base second stage done"
touch /mnt/smoke-io/out/ok
STAGE
base_key=$(printf '%s\n' "$suite" "$mirror" "$packages" "$base_stage" | key)
base="$cache/base-$base_key"
if [[ ! -f $base/root.qcow2 ]]; then
  rm -rf "$base.tmp" "$work/rootfs"
  mkdir -p "$base.tmp"
  rootfs="$work/rootfs"
  say "debootstrap (first stage) from $mirror"
  debootstrap --foreign --arch=arm64 --variant=minbase --include="$packages" \
    "$suite" "$rootfs" "$mirror"
  mark "debootstrap first stage (host)"
  # dpkg's fsyncs are slow under emulation and buy nothing while a base is being made.
  echo force-unsafe-io >"$rootfs/etc/dpkg/dpkg.cfg.d/smoke-unsafe-io"
  archives="$rootfs/var/cache/apt/archives"

  # Kernel and initramfs, both from the debs debootstrap fetched.
  kx="$work/kernel-x"
  rm -rf "$kx" "$work/busybox" "$work/initramfs"
  kdeb=$(find "$archives" -name 'linux-image-[0-9]*-arm64_*.deb' | head -n 1)
  [[ -n $kdeb ]] || die "no linux-image deb in $archives"
  dpkg-deb -x "$kdeb" "$kx"
  kver=$(basename "$(find "$kx/lib/modules" -mindepth 1 -maxdepth 1 -type d | head -n 1)")
  [[ -f $kx/boot/vmlinuz-$kver ]] || die "no kernel image in $kdeb"
  cp "$kx/boot/vmlinuz-$kver" "$base.tmp/vmlinuz"
  bdeb=$(find "$archives" -name 'busybox-static_*.deb' | head -n 1)
  [[ -n $bdeb ]] || die "no busybox-static deb in $archives"
  dpkg-deb -x "$bdeb" "$work/busybox"
  ird="$work/initramfs"
  mkdir -p "$ird"/{bin,dev,proc,sys,newroot,io,modules}
  cp "$work/busybox/bin/busybox" "$ird/bin/busybox"
  for applet in sh mount umount insmod sleep switch_root chroot mkdir cat echo ls sync poweroff sed cut; do
    ln -sf busybox "$ird/bin/$applet"
  done
  modroot="$kx/lib/modules/$kver"
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
    echo '# Every boot of the smoke machine: modules, root and io disks, the layer script.'
    echo 'mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev'
    for m in "${order[@]}"; do echo "insmod /modules/$m"; done
    cat <<'INIT'
n=$(sed -n 's/.*smoke\.disks=\([0-9]*\).*/\1/p' /proc/cmdline)
last=$(echo abcdefgh | cut -c"${n:-2}")
i=0; while [ ! -b "/dev/vd$last" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
# virtio-mmio disks are numbered in no promised order: find each by its content.
for disk in /dev/vd?; do
  if [ ! -e /newroot/etc/os-release ] && mount -t ext4 -o rw "$disk" /newroot 2>/dev/null; then
    [ -e /newroot/etc/os-release ] || umount /newroot
  fi
  if [ ! -e /io/smoke-io ] && mount -t ext4 -o rw "$disk" /io 2>/dev/null; then
    [ -e /io/smoke-io ] || umount /io
  fi
done
[ -e /newroot/etc/os-release ] || { echo "BODYCAM-SMOKE: FAIL cannot find the root disk"; exec sh; }
[ -e /io/smoke-io ] || { echo "BODYCAM-SMOKE: FAIL cannot find the io disk"; exec sh; }
mkdir -p /newroot/mnt/smoke-io
mount --move /io /newroot/mnt/smoke-io
mount --bind /proc /newroot/proc; mount --bind /sys /newroot/sys; mount --bind /dev /newroot/dev
rc=0
chroot /newroot /bin/sh /mnt/smoke-io/stage || rc=$?
umount /newroot/dev /newroot/sys /newroot/proc
if [ $rc -ne 0 ] || [ ! -e /newroot/mnt/smoke-io/boot-systemd ]; then
  [ $rc -eq 0 ] || echo "BODYCAM-SMOKE: FAIL layer script exit status $rc"
  umount /newroot/mnt/smoke-io; umount /newroot; sync
  poweroff -f
fi
umount /newroot/mnt/smoke-io
umount /proc /sys
echo "BODYCAM-SMOKE: T systemd starts"
exec switch_root /newroot /sbin/init
INIT
  } >"$ird/init"
  chmod +x "$ird/init"
  (cd "$ird" && find . | cpio --quiet -o -H newc | gzip -1) >"$base.tmp/initrd.gz"

  rm -f "$base.tmp/root.raw"
  mkfs.ext4 -q -F -L smoke-root -d "$rootfs" "$base.tmp/root.raw" 4G
  qemu-img convert -f raw -O qcow2 "$base.tmp/root.raw" "$base.tmp/root.qcow2"
  rm -f "$base.tmp/root.raw"
  (( keep )) || rm -rf "$rootfs" "$kx" "$work/busybox" "$ird"
  rm -rf "$work/io.d"; mkdir -p "$work/io.d"
  printf '%s\n' "$base_stage" >"$work/io.d/stage"
  make_io "$work/io.d" 16M
  kernel="$base.tmp/vmlinuz"; initrd="$base.tmp/initrd.gz"
  mark "base root and kernel prepared (host)"
  boot base "$timeout_s" "$base.tmp/root.qcow2" || true
  io_get /out/ok "$work/ok" || die "the base's second stage failed; see $work/console-base.log"
  rm -f "$work/ok"
  rm -rf "$base"; mv "$base.tmp" "$base"
  mark "base cached ($(basename "$base"))"
else
  mark "base from cache ($(basename "$base"))"
fi
kernel="$base/vmlinuz"; initrd="$base/initrd.gz"

# --- 2. the agent wheel and the arm64 wheelhouse of its dependencies -----------------------------------
# From a copy of the repository's own files: the work directory (root filesystems, caches) must
# not be walked by the build backend's package discovery.
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
(cd "$repo" && git ls-files -z --cached --others --exclude-standard) \
  | (cd "$repo" && while IFS= read -r -d '' f; do
       if [[ -f $f ]]; then cp --parents -- "$f" "$src/"; fi
     done)
rm -rf "$work/agent"
"$python" -m pip wheel --quiet --no-deps --disable-pip-version-check --wheel-dir "$work/agent" "$src"
wheel=$(find "$work/agent" -name 'bodycam_agent-*.whl' | head -n 1)
[[ -n $wheel ]] || die "no agent wheel built"
mark "agent wheel built (host)"
# Dependencies from the wheel's metadata, less PyAudio and numpy: the guest uses Debian's
# python3-pyaudio (no arm64 wheel exists on PyPI) and python3-numpy (the camera stack is built
# against it), as the device image does.
mapfile -t deps < <("$python" - "$wheel" <<'PY'
import re, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    for line in z.read(meta).decode().splitlines():
        if line.startswith("Requires-Dist:") and "extra ==" not in line:
            req = line.split(":", 1)[1].split(";")[0].strip()
            if not re.match(r"(?i)(pyaudio|numpy)\b", req):
                print(req)
PY
)
pip_target=(--python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none
  --platform manylinux_2_36_aarch64 --platform manylinux_2_34_aarch64
  --platform manylinux_2_28_aarch64 --platform manylinux_2_17_aarch64
  --platform manylinux2014_aarch64 --platform any)
wheels_key=$(printf '%s\n' "${deps[@]}" "${pip_target[@]}" | key)
wheels="$cache/wheels-$wheels_key"
if [[ ! -f $wheels/requirements.txt ]]; then
  rm -rf "$wheels.tmp"
  "$python" -m pip download --quiet --disable-pip-version-check --dest "$wheels.tmp" \
    --only-binary=:all: "${pip_target[@]}" "${deps[@]}"
  printf '%s\n' "${deps[@]}" >"$wheels.tmp/requirements.txt"
  rm -rf "$wheels"; mv "$wheels.tmp" "$wheels"
  mark "arm64 wheelhouse downloaded ($(basename "$wheels"))"
else
  mark "arm64 wheelhouse from cache ($(basename "$wheels"))"
fi

# --- 3. prepared image: the venv with the dependencies, as a qcow2 overlay on the base ------------------
read -r -d '' venv_stage <<'STAGE' || true
#!/bin/sh
set -e
exec >/dev/console 2>&1
echo "BODYCAM-SMOKE: T venv install starts"
python3 -m venv --system-site-packages /opt/bodycam/venv
# Keep the distribution's numpy (the image does the same: picamera2 is built against it).
python3 -c 'import numpy; print("numpy==" + numpy.__version__)' >/opt/bodycam/constraints.txt
/opt/bodycam/venv/bin/pip install --no-index --find-links /mnt/smoke-io/wheels \
  --disable-pip-version-check --no-cache-dir -c /opt/bodycam/constraints.txt \
  -r /mnt/smoke-io/wheels/requirements.txt
echo "BODYCAM-SMOKE: T venv install done"
touch /mnt/smoke-io/out/ok
STAGE
venv_key=$(printf '%s\n' "$base_key" "$wheels_key" "$venv_stage" | key)
venv="$cache/venv-$venv_key.qcow2"
if [[ ! -f $venv ]]; then
  rm -f "$venv.tmp"
  (cd "$cache" && qemu-img create -q -f qcow2 -b "base-$base_key/root.qcow2" -F qcow2 "$(basename "$venv").tmp")
  rm -rf "$work/io.d"; mkdir -p "$work/io.d"
  printf '%s\n' "$venv_stage" >"$work/io.d/stage"
  cp -r "$wheels" "$work/io.d/wheels"
  make_io "$work/io.d" 512M
  mark "venv layer io disk made (host)"
  boot venv "$timeout_s" "$venv.tmp" || true
  io_get /out/ok "$work/ok" || die "the venv install failed; see $work/console-venv.log"
  rm -f "$work/ok"
  mv "$venv.tmp" "$venv"
  mark "venv layer cached ($(basename "$venv"))"
else
  mark "venv layer from cache ($(basename "$venv"))"
fi

# --- 4. this run: the agent installed as the image does, the smoke device's configuration -------------
io="$work/io.d"
rm -rf "$io"; mkdir -p "$io/files"
if (( tests )); then
  # The test tools (pure Python but for PyYAML and jsonschema's rpds-py), and the suites with
  # the project's pytest configuration and the documents they check; not the agent's sources:
  # the installed agent is tested.
  test_deps=("pytest>=8" "pytest-timeout>=2.2" "hypothesis>=6.100" "jsonschema>=4.20" "pyyaml>=6")
  twheels="$cache/testwheels-$(printf '%s\n' "${test_deps[@]}" "${pip_target[@]}" | key)"
  if [[ ! -d $twheels ]]; then
    "$python" -m pip download --quiet --disable-pip-version-check --dest "$twheels.tmp" \
      --only-binary=:all: "${pip_target[@]}" "${test_deps[@]}"
    mv "$twheels.tmp" "$twheels"
  fi
  cp -r "$twheels" "$io/testwheels"
  printf '%s\n' "${test_deps[@]}" >"$io/testwheels/requirements.txt"
  mkdir -p "$io/src"
  cp "$repo/pyproject.toml" "$io/src/"
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard tests docs) \
    | (cd "$repo" && while IFS= read -r -d '' f; do
         if [[ -f $f ]]; then cp --parents -- "$f" "$io/src/"; fi
       done)
  touch "$io/run-tests"
fi
cp "$wheel" "$io/"
cp "$files"/* "$io/files/"
# The smoke device records from the simulator. No agency recipient: the simulator then makes
# its own bench identity (data dir sim-agency.key) so the verifier can check plaintext too.
sed -e '/^[[:space:]]*#/!s|@RECIPIENTS@||' \
    -e '/^[[:space:]]*#/!s|@MQTT_URL@|mqtts://localhost:8883|' \
    -e 's/^kind = "pi"/kind = "sim"/' "$files/bodycam.toml.in" >"$io/files/bodycam.toml.in"
# Emulation runs some 20-50 times slower than a Pi: a small picture, short segments, and
# stall windows sized for it.
cat >>"$io/files/bodycam.toml.in" <<'TOML'

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
cat >"$io/stage" <<'STAGE'
#!/bin/sh
# The agent installed as pi-gen's stage installs it (00-run.sh, 00-run-chroot.sh), then systemd.
set -e
exec >/dev/console 2>&1
echo "BODYCAM-SMOKE: T agent install starts"
io=/mnt/smoke-io
f=$io/files
/opt/bodycam/venv/bin/pip install --no-index --no-deps --disable-pip-version-check \
  --no-cache-dir -c /opt/bodycam/constraints.txt "$io"/bodycam_agent-*.whl
# Every requirement satisfied, the distribution's packages included (reported, not fatal:
# the agent's own imports are proven when the service starts).
/opt/bodycam/venv/bin/pip check --disable-pip-version-check \
  || echo "BODYCAM-SMOKE: pip check reports the problems above"
groupadd -f -r gpio; groupadd -f -r i2c
id bodycam >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
  --home-dir /var/lib/bodycam --shell /usr/sbin/nologin --comment "body-worn recorder agent" bodycam
usermod --groups video,gpio,i2c,dialout,audio bodycam
install -d /usr/lib/bodycam /usr/share/bodycam /etc/bodycam /etc/systemd/journald.conf.d \
  /etc/modules-load.d /boot/firmware
install -m 644 "$f"/*.service /etc/systemd/system/
install -m 755 "$f/bodycam-provision" "$f/bodycam-growdata" "$f/bodycam-enrol" /usr/lib/bodycam/
install -m 644 "$f/bodycam.toml.in" /usr/share/bodycam/
install -m 644 "$f/journald-bodycam.conf" /etc/systemd/journald.conf.d/bodycam.conf
ln -sfn /var/lib/bodycam/config/bodycam.toml /etc/bodycam/bodycam.toml
install -d -m 0750 /var/lib/bodycam
echo 'LABEL=smoke-root / ext4 defaults,noatime 0 1' >/etc/fstab
echo 'LABEL=bodycam-data /var/lib/bodycam ext4 defaults,noatime,commit=5,nodev,nosuid,noexec,errors=remount-ro,nofail,x-systemd.device-timeout=20s 0 2' >>/etc/fstab
# The only differences from a device: simulated hardware, and timeouts for emulation.
install -d /etc/systemd/system/bodycam.service.d
printf '%s\n' '[Service]' 'ExecStart=' \
  'ExecStart=/opt/bodycam/venv/bin/bodycam run --hw sim --config /etc/bodycam/bodycam.toml --data-dir /var/lib/bodycam' \
  '# emulation is 20-50 times slower than a Pi' 'WatchdogSec=30' 'TimeoutStartSec=600' \
  'TimeoutStopSec=120' >/etc/systemd/system/bodycam.service.d/smoke.conf
install -m 755 "$io/check" /usr/local/sbin/bodycam-smoke-check
cat >/etc/systemd/system/bodycam-smoke.service <<'UNIT'
[Unit]
Description=Smoke test: READY, one recording, verified on the device
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
systemctl enable bodycam-growdata.service bodycam-provision.service bodycam-enrol.service \
  bodycam.service bodycam-smoke.service
systemctl mask serial-getty@ttyAMA0.service
echo bodycam >/etc/hostname
if [ -d "$io/testwheels" ]; then
  /opt/bodycam/venv/bin/pip install --no-index --find-links "$io/testwheels" \
    --disable-pip-version-check --no-cache-dir -c /opt/bodycam/constraints.txt \
    -r "$io/testwheels/requirements.txt"
fi
touch "$io/boot-systemd"
echo "BODYCAM-SMOKE: T agent installed"
STAGE
cat >"$io/check" <<'CHECK'
#!/bin/bash
# Waits for READY, records one segment, stops the recorder (sealing), verifies on the device.
report() { echo "BODYCAM-SMOKE: $*"; }
io=/mnt/smoke-io
data=/var/lib/bodycam
ctl=/opt/bodycam/venv/bin/bodycam
finish() {
  systemctl --no-pager status bodycam-growdata bodycam-provision bodycam | head -n 60
  journalctl --no-pager -u bodycam-provision -u bodycam -n 80
  journalctl --no-pager -u bodycam -o cat >"$io/out/bodycam.journal" 2>&1
  report "$1"
  sync; umount "$io"
  systemctl poweroff
  exit 0
}
mkdir -p "$io"
mount LABEL=smoke-io "$io" || { report "FAIL cannot mount the io disk"; systemctl poweroff; exit 0; }
for _ in $(seq 1 600); do
  state=$(systemctl show -p ActiveState --value bodycam.service)
  [[ $state == active ]] && break
  [[ $state == failed ]] && finish "FAIL bodycam.service failed before READY"
  sleep 1
done
[[ $state == active ]] || finish "FAIL bodycam.service not READY after 600 s (state $state)"
started=$(systemctl show -p ExecMainStartTimestampMonotonic --value bodycam.service)
ready=$(systemctl show -p ActiveEnterTimestampMonotonic --value bodycam.service)
report "T READY"
report "READY $(( (ready - started) / 1000 )) ms after the agent started (guest clock)"
findmnt -n /var/lib/bodycam && report "data partition: $(df -h --output=size /var/lib/bodycam | tail -n 1)"
systemctl show -p NoNewPrivileges -p ProtectSystem -p SystemCallFilter -p DevicePolicy \
  -p RestrictAddressFamilies -p CapabilityBoundingSet bodycam.service | cut -c1-160 >"$io/out/hardening.txt"
"$ctl" ctl press --data-dir "$data" || finish "FAIL ctl press"
first=
for _ in $(seq 1 300); do
  first=$(find "$data/recordings" -name '*.manifest.json' 2>/dev/null | head -n 1)
  [[ -n $first ]] && break
  sleep 1
done
[[ -n $first ]] || finish "FAIL no sealed segment 300 s after the press"
report "T first segment sealed"
report "first segment: ${first#"$data"/}"
"$ctl" ctl hold --data-dir "$data" || finish "FAIL ctl hold"
"$ctl" ctl status --data-dir "$data" >"$io/out/status.json" 2>&1 || true
systemctl stop bodycam.service
result=$(systemctl show -p Result --value bodycam.service)
[[ $result == success ]] || finish "FAIL bodycam.service stopped with result $result"
report "T recorder stopped (segments sealed)"
[[ -s $data/sim-agency.key ]] || finish "FAIL no simulator agency identity in $data"
"$ctl" verify "$data" --identity "$data/sim-agency.key" --pubkey "$data/keys/device.pub" \
  --json >"$io/out/verify.json" 2>"$io/out/verify.err"
vrc=$?
"$ctl" verify "$data" --identity "$data/sim-agency.key" --pubkey "$data/keys/device.pub" \
  >"$io/out/verify.txt" 2>&1
report "T verified"
report "bodycam verify exit status $vrc; segments: $(find "$data/recordings" -name '*.manifest.json' | wc -l)"
[[ $vrc == 0 ]] || finish "FAIL bodycam verify exit status $vrc"
if [[ -e $io/run-tests ]]; then
  report "T arm64 test suites start"
  (cd "$io/src" && timeout -s INT 1800 /opt/bodycam/venv/bin/python -m pytest -q -rfEs -p no:cacheprovider \
     -o cache_dir=/tmp/pytest-cache tests/contract tests/evidence) >"$io/out/pytest-arm64.txt" 2>&1
  report "T arm64 test suites done"
  report "pytest (arm64): $(tail -n 1 "$io/out/pytest-arm64.txt")"
fi
finish "PASS"
CHECK
chmod +x "$io/stage" "$io/check"
make_io "$io" 256M
overlay="$work/run.qcow2"
rm -f "$overlay"
qemu-img create -q -f qcow2 -b "$venv" -F qcow2 "$overlay"
# The data disk looks like the card's tail: one 256 MiB partition labelled bodycam-data in a
# 768 MiB disk, which bodycam-growdata must grow.
rm -f "$work/data.img"
truncate -s 768M "$work/data.img"
echo "start=16384, size=524288, type=83" | sfdisk --quiet "$work/data.img"
mkfs.ext4 -q -F -L bodycam-data "$work/data.part" 256M
dd if="$work/data.part" of="$work/data.img" bs=1M seek=8 conv=notrunc status=none
rm -f "$work/data.part"
mark "run disks made (host)"

# --- 5. boot, READY, one recording, verified -------------------------------------------------------------
status=0
boot run "$timeout_s" "$overlay" "$work/data.img" || status=$?
rm -f "$work/verify.json" "$work/verify.txt" "$work/hardening.txt" "$work/bodycam.journal"
for f in verify.json verify.txt verify.err hardening.txt status.json bodycam.journal pytest-arm64.txt; do
  io_get "/out/$f" "$work/$f" || true
done
(( keep )) || rm -f "$overlay"
mark "powered off"
timeline
if grep -q 'BODYCAM-SMOKE: PASS' "$work/console-run.log"; then
  say "verification report: $work/verify.json ($work/verify.txt)"
  say "PASS"
  exit 0
fi
say "FAIL (qemu exit status $status); see $work/console-run.log"
exit 1
