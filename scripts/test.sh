#!/usr/bin/env bash
# Set up everything (scripts/setup.sh) and run the whole test suite, then the image checks.
# Extra arguments go to pytest (e.g. scripts/test.sh -k gps -x).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
image-build/check.sh --no-pytest      # shellcheck, pi-gen stage layout, systemd-analyze verify
# Three test processes: the suite mostly waits on real time (recordings, brokers, link cuts),
# so three share two cores in well under half the time one takes.
.venv/bin/python -m pytest -q -p no:cacheprovider -n 3 --durations=15 "$@"
