#!/usr/bin/env bash
# Set up everything (scripts/setup.sh) and run the agent. Off a Raspberry Pi the hardware is
# simulated (camera, microphone, button, GPS on a pty, battery, disk); on a Pi it is real.
# Extra arguments go to `bodycam run` (e.g. --for 60 --data-dir /tmp/evidence); --with-station
# also runs a collection station on loopback and offloads every segment to it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
exec .venv/bin/bodycam run --config config/default.toml "$@"
