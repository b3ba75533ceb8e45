#!/bin/bash
# Quick checks of the device image's sources (CI, well under a minute, no root, no network):
#   1. shellcheck on every shell script of the image build and the stage;
#   2. the pi-gen stage layout: required files present, scripts executable;
#   3. systemd-analyze verify on the units (ExecStart paths pointed at stubs, since the
#      agent's venv exists only on the device), failing on any warning;
#   4. pytest tests/image: the sd_notify protocol, the watchdog gate, the shipped
#      configuration, the data partition tooling.
# Runs every group and exits non-zero if any failed, after printing what failed.
# --no-pytest skips group 4, for a CI that runs the whole pytest suite anyway.
set -euo pipefail

run_pytest=1
case ${1:-} in
  --no-pytest) run_pytest=0 ;;
  "") ;;
  *) echo "usage: check.sh [--no-pytest]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
stage="$here/stage-bodycam"
sub="$stage/00-bodycam"
python=${PYTHON:-$repo/.venv/bin/python}
[[ -x $python ]] || python=python3
failures=0

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

need() {
  command -v "$1" >/dev/null || { echo "check.sh: $1 is required ($2)" >&2; exit 2; }
}
need shellcheck "apt-get install shellcheck"
need systemd-analyze "apt-get install systemd"

# --- 1 ----------------------------------------------------------------------------------------
step "shellcheck"
scripts=(
  "$here/build.sh" "$here/check.sh" "$here/qemu-smoke.sh" "$here/add-data-partition.sh"
  "$stage/prerun.sh" "$sub/00-run.sh" "$sub/00-run-chroot.sh" "$sub/boot-config.sh"
  "$sub/files/bodycam-provision" "$sub/files/bodycam-growdata" "$sub/files/bodycam-enrol"
)
# EXPORT_IMAGE is sourced by pi-gen's bash; check it as bash.
if shellcheck --shell=bash "${scripts[@]}" "$stage/EXPORT_IMAGE"; then
  echo "ok: ${#scripts[@]} scripts and EXPORT_IMAGE"
else
  fail "shellcheck"
fi

# --- 2 ----------------------------------------------------------------------------------------
step "stage layout"
layout_ok=1
for f in "$stage/EXPORT_IMAGE" "$sub/00-packages" "$sub/files/bodycam.service" \
    "$sub/files/bodycam-provision.service" "$sub/files/bodycam-growdata.service" \
    "$sub/files/bodycam-enrol.service" \
    "$sub/files/bodycam.toml.in" "$sub/files/journald-bodycam.conf" \
    "$sub/files/modules-load-bodycam.conf"; do
  [[ -f $f ]] || { fail "missing ${f#"$repo"/}"; layout_ok=0; }
done
for f in "$stage/prerun.sh" "$sub/00-run.sh" "$sub/boot-config.sh" "$sub/files/bodycam-provision" \
    "$sub/files/bodycam-growdata" "$sub/files/bodycam-enrol" "$here/build.sh" "$here/check.sh" "$here/qemu-smoke.sh" \
    "$here/add-data-partition.sh"; do
  [[ -x $f ]] || { fail "not executable: ${f#"$repo"/}"; layout_ok=0; }
done
# pi-gen installs every word of 00-packages; a comment would become a package name.
if grep -nE '#|[^a-z0-9.+-]' "$sub/00-packages" | grep -v '^[0-9]*:$'; then
  fail "00-packages must list bare package names, one per line"; layout_ok=0
fi
# Files directly in the stage directory (other than these) are ignored by pi-gen.
for f in "$stage"/*; do
  case $(basename "$f") in
    prerun.sh|EXPORT_IMAGE|00-bodycam) ;;
    *) fail "pi-gen ignores ${f#"$repo"/}: put it in a sub-stage"; layout_ok=0 ;;
  esac
done
(( layout_ok )) && echo "ok: stage-bodycam"

# --- 3 ----------------------------------------------------------------------------------------
step "systemd-analyze verify"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/units" "$tmp/bin"
for stub in bodycam bodycam-provision bodycam-growdata bodycam-enrol; do
  printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/$stub"
  chmod +x "$tmp/bin/$stub"
done
for unit in "$sub"/files/*.service; do
  sed -e "s|/opt/bodycam/venv/bin/bodycam|$tmp/bin/bodycam|g" \
      -e "s|/usr/lib/bodycam/|$tmp/bin/|g" "$unit" >"$tmp/units/$(basename "$unit")"
done
# systemd-analyze reports unknown keys and bad values as warnings with exit status 0:
# any output at all is a failure here.
if out=$(systemd-analyze verify --man=no "$tmp"/units/*.service 2>&1) && [[ -z $out ]]; then
  echo "ok: $(cd "$tmp/units" && echo *.service)"
else
  printf '%s\n' "$out" >&2
  fail "systemd-analyze verify"
fi

# --- 4 ----------------------------------------------------------------------------------------
if (( run_pytest )); then
  step "pytest tests/image"
  if ! (cd "$repo" && "$python" -m pytest -q -p no:cacheprovider tests/image); then
    fail "pytest tests/image"
  fi
fi

echo
if (( failures )); then
  echo "check.sh: $failures check group(s) failed" >&2
  exit 1
fi
echo "check.sh: all checks passed"
