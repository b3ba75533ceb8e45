#!/bin/bash
# Build a recorder SD-card image: Raspberry Pi OS Lite (bookworm, arm64) + the bodycam stage.
#
# Runs on a Linux PC (x86-64 or arm64) as root: pi-gen needs root, loop devices and, on x86,
# qemu-user with binfmt (its own dependencies check says what to install). With --docker,
# pi-gen's build-docker.sh does the same inside a privileged container.
#
#   sudo image-build/build.sh --recipient age1... [--ssh-key ~/.ssh/id_ed25519.pub]
#
# Steps: 1. build the agent wheel from this repository; 2. fetch pi-gen at a pinned tag;
# 3. copy stage-bodycam in, with the wheel and the image's default configuration;
# 4. write pi-gen's config and run it (stage0, stage1, stage2 = Lite, then stage-bodycam);
# 5. append the evidence data partition (add-data-partition.sh); 6. compress and checksum.
# The result is image-build/work/deploy/<name>.img.xz with its .sha256.
#
# Options (each also settable as the environment variable in brackets):
#   --recipient AGE1...   agency age recipient; repeat for several [BODYCAM_RECIPIENTS, spaces]
#   --config FILE         configuration template to ship instead of stage-bodycam's
#                         (may contain @DEVICE_ID@ and @RECIPIENTS@) [BODYCAM_CONFIG]
#   --mqtt-url URL        the fleet broker, mqtts://host:8883 [BODYCAM_MQTT_URL]
#   --ssh-key FILE        public key of the maintenance account; enables SSH, keys only
#                         [BODYCAM_SSH_KEY]. Without it the image has no remote login at all.
#   --admin-user NAME     maintenance account name (default bcadmin) [BODYCAM_ADMIN_USER]
#   --hostname NAME       (default bodycam) [BODYCAM_HOSTNAME]
#   --data-mib N          initial data partition size; it grows on the card (default 256)
#   --writable-root       do not switch the root filesystem to a read-only overlay after
#                         first-boot provisioning [BODYCAM_WRITABLE_ROOT=1]
#   --fuel-gauge NAME     device-tree overlay for a kernel fuel gauge on I2C-1, so that it
#                         appears under /sys/class/power_supply: max17040 (MAX17040/43/48,
#                         address 0x36, dtoverlay=i2c-sensor,max17040) or none (default: the
#                         INA219 and PiSugar readers need no overlay) [BODYCAM_FUEL_GAUGE]
#   --wheel FILE          ship this agent wheel instead of building one from this checkout
#   --pi-gen DIR          use an existing pi-gen checkout instead of cloning [PI_GEN_DIR]
#   --pi-gen-ref REF      pi-gen tag to clone (default below) [PI_GEN_REF]
#   --work DIR            work directory (default image-build/work) [BODYCAM_WORK]
#   --docker              run pi-gen through build-docker.sh
#   --stage-only          prepare the pi-gen tree and config, do not run pi-gen
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

PI_GEN_URL=${PI_GEN_URL:-https://github.com/RPi-Distro/pi-gen.git}
# The newest bookworm arm64 release tag when this was written; bump deliberately.
PI_GEN_REF=${PI_GEN_REF:-2026-06-18-raspios-bookworm-arm64}
recipients=${BODYCAM_RECIPIENTS:-}
config_template=${BODYCAM_CONFIG:-}
mqtt_url=${BODYCAM_MQTT_URL:-}
ssh_key=${BODYCAM_SSH_KEY:-}
admin_user=${BODYCAM_ADMIN_USER:-bcadmin}
hostname=${BODYCAM_HOSTNAME:-bodycam}
data_mib=256
writable_root=${BODYCAM_WRITABLE_ROOT:-0}
fuel_gauge=${BODYCAM_FUEL_GAUGE:-none}
pi_gen_dir=${PI_GEN_DIR:-}
prebuilt_wheel=""
work=${BODYCAM_WORK:-$here/work}
docker=0
stage_only=0

die() { echo "build.sh: $*" >&2; exit 1; }
say() { echo "build.sh: $*"; }

while (( $# )); do
  case $1 in
    --recipient) recipients="$recipients ${2:?}"; shift 2 ;;
    --config) config_template=${2:?}; shift 2 ;;
    --mqtt-url) mqtt_url=${2:?}; shift 2 ;;
    --ssh-key) ssh_key=${2:?}; shift 2 ;;
    --admin-user) admin_user=${2:?}; shift 2 ;;
    --hostname) hostname=${2:?}; shift 2 ;;
    --data-mib) data_mib=${2:?}; shift 2 ;;
    --writable-root) writable_root=1; shift ;;
    --fuel-gauge) fuel_gauge=${2:?}; shift 2 ;;
    --pi-gen) pi_gen_dir=${2:?}; shift 2 ;;
    --wheel) prebuilt_wheel=${2:?}; shift 2 ;;
    --pi-gen-ref) PI_GEN_REF=${2:?}; shift 2 ;;
    --work) work=${2:?}; shift 2 ;;
    --docker) docker=1; shift ;;
    --stage-only) stage_only=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

# --- checks before anything slow -------------------------------------------------------------
template=${config_template:-$here/stage-bodycam/00-bodycam/files/bodycam.toml.in}
[[ -f $template ]] || die "configuration template $template not found"
read -r -a recipient_list <<<"$recipients"
for r in "${recipient_list[@]}"; do
  [[ $r =~ ^age1[02-9ac-hj-np-z]{58}$ ]] || die "'$r' is not an age X25519 recipient (age1 + 58 characters)"
done
if grep -q '@RECIPIENTS@' "$template" && (( ${#recipient_list[@]} == 0 )); then
  die "no agency recipient: pass --recipient age1... (the agency's public key; evidence is encrypted to it)"
fi
if grep -q '@MQTT_URL@' "$template" && [[ -z $mqtt_url ]]; then
  say "warning: no --mqtt-url: devices will not sync until their configuration names a broker"
  mqtt_url="mqtts://localhost:8883"
fi
[[ -z $mqtt_url || $mqtt_url =~ ^mqtts?://[^[:space:]\"|]+$ ]] || die "'$mqtt_url' is not an mqtt(s):// URL"
grep -q '@DEVICE_ID@' "$template" \
  || say "warning: $template has no @DEVICE_ID@: every device flashed from this image gets the same id"
if [[ -n $ssh_key ]]; then
  [[ -f $ssh_key ]] || die "SSH public key $ssh_key not found"
  grep -q '^ssh-' "$ssh_key" || die "$ssh_key does not look like an OpenSSH public key"
fi
case $fuel_gauge in
  none|max17040) ;;
  *) die "--fuel-gauge $fuel_gauge: known gauges are max17040 and none (BQ27xxx gauges have no driver in the Raspberry Pi kernels)" ;;
esac
if [[ ! $data_mib =~ ^[0-9]+$ ]] || (( data_mib < 64 )); then
  die "--data-mib must be a whole number, at least 64"
fi
if (( ! stage_only && ! docker )) && (( EUID != 0 )); then
  die "pi-gen needs root (loop devices, chroot): run with sudo, or use --docker"
fi
command -v git >/dev/null || die "git is required"
python=${PYTHON:-python3}
if [[ -n $prebuilt_wheel ]]; then
  [[ -f $prebuilt_wheel && $(basename "$prebuilt_wheel") == bodycam_agent-*.whl ]] \
    || die "--wheel $prebuilt_wheel is not a bodycam_agent wheel file"
else
  "$python" -m pip --version >/dev/null 2>&1 || die "$python with pip is required to build the agent wheel"
fi

mkdir -p "$work"
work=$(cd "$work" && pwd)

# --- 1. the agent wheel -------------------------------------------------------------------------
rm -rf "$work/wheels"
mkdir -p "$work/wheels"
if [[ -n $prebuilt_wheel ]]; then
  cp "$prebuilt_wheel" "$work/wheels/"
else
  say "building the agent wheel from $repo"
  # From a copy of the repository's own files: the work directory (pi-gen's root
  # filesystems) must not be walked by the build backend's package discovery.
  src=$(mktemp -d)
  trap 'rm -rf "$src"' EXIT
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard) \
    | (cd "$repo" && while IFS= read -r -d '' f; do
         if [[ -f $f ]]; then cp --parents -- "$f" "$src/"; fi
       done)
  "$python" -m pip wheel --quiet --no-deps --wheel-dir "$work/wheels" "$src"
fi
shopt -s nullglob
wheels=("$work"/wheels/bodycam_agent-*.whl)
(( ${#wheels[@]} == 1 )) || die "expected one bodycam_agent wheel, got ${#wheels[@]}"

# --- 2. pi-gen ------------------------------------------------------------------------------------
if [[ -z $pi_gen_dir ]]; then
  pi_gen_dir="$work/pi-gen"
  if [[ ! -d $pi_gen_dir/.git ]]; then
    say "cloning pi-gen $PI_GEN_REF"
    git clone --depth 1 --branch "$PI_GEN_REF" "$PI_GEN_URL" "$pi_gen_dir"
  fi
fi
[[ -x $pi_gen_dir/build.sh && -d $pi_gen_dir/stage2 ]] || die "$pi_gen_dir is not a pi-gen checkout"

# --- 3. the stage, with this build's wheel and configuration ------------------------------------
stage="$pi_gen_dir/stage-bodycam"
rm -rf "$stage"
cp -a "$here/stage-bodycam" "$stage"
files="$stage/00-bodycam/files"
mkdir -p "$files/wheels"
cp "${wheels[0]}" "$files/wheels/"
quoted=$(printf '"%s", ' "${recipient_list[@]}")
quoted=${quoted%, }
(( ${#recipient_list[@]} )) || quoted=""
sed -e "/^[[:space:]]*#/!s|@RECIPIENTS@|$quoted|" -e "/^[[:space:]]*#/!s|@MQTT_URL@|$mqtt_url|" \
  "$template" >"$files/bodycam.toml.in"
cp "$here/README.md" "$files/README.md"
(( writable_root )) || : >"$files/readonly-root"
echo "$fuel_gauge" >"$files/fuel-gauge"
# Only the Lite image is wanted: stage2 must not export an image of its own.
touch "$pi_gen_dir/stage2/SKIP_IMAGES"

# A random password for the maintenance account that nobody will ever know: the stage locks
# it, so the account is reachable only with the SSH key given here, or not at all.
admin_pass=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
img_name="bodycam-$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)"
{
  echo "IMG_NAME='$img_name'"
  echo "RELEASE=bookworm"
  echo "ARCH=arm64"
  echo "STAGE_LIST='stage0 stage1 stage2 stage-bodycam'"
  echo "DEPLOY_COMPRESSION=none"
  echo "TARGET_HOSTNAME='$hostname'"
  echo "LOCALE_DEFAULT=C.UTF-8"
  echo "TIMEZONE_DEFAULT=Etc/UTC"
  echo "KEYBOARD_KEYMAP=us"
  echo "KEYBOARD_LAYOUT='English (US)'"
  echo "FIRST_USER_NAME='$admin_user'"
  echo "FIRST_USER_PASS='$admin_pass'"
  echo "DISABLE_FIRST_BOOT_USER_RENAME=1"
  if [[ -n $ssh_key ]]; then
    echo "ENABLE_SSH=1"
    echo "PUBKEY_ONLY_SSH=1"
    echo "PUBKEY_SSH_FIRST_USER='$(head -n 1 "$ssh_key")'"
  else
    echo "ENABLE_SSH=0"
  fi
} >"$pi_gen_dir/config"
chmod 0600 "$pi_gen_dir/config"
if (( stage_only )); then
  say "pi-gen tree prepared in $pi_gen_dir (not run: --stage-only)"
  exit 0
fi

# --- 4. pi-gen ---------------------------------------------------------------------------------------
say "running pi-gen (this takes 30-90 minutes)"
if (( docker )); then
  (cd "$pi_gen_dir" && ./build-docker.sh)
else
  (cd "$pi_gen_dir" && ./build.sh)
fi
images=("$pi_gen_dir"/deploy/*"$img_name"*-bodycam.img)
(( ${#images[@]} == 1 )) || die "expected one image in $pi_gen_dir/deploy, found ${#images[@]}"

# --- 5. data partition, 6. compress --------------------------------------------------------------
mkdir -p "$work/deploy"
out="$work/deploy/$(basename "${images[0]}")"
mv -f "${images[0]}" "$out"
"$here/add-data-partition.sh" "$out" "$data_mib"
xz -T0 -f "$out"
(cd "$work/deploy" && sha256sum "$(basename "$out").xz" >"$(basename "$out").xz.sha256")
say "done: $out.xz"
say "flash it with: xzcat $out.xz | sudo dd of=/dev/sdX bs=4M conv=fsync status=progress"
