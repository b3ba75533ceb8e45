#!/usr/bin/env bash
# Interoperability suite: the device's MQTT link against a second broker, ejabberd's mod_mqtt
# (tests/sync/test_sync_broker2.py, marker broker2; not in the default suite).
# Installs Debian's ejabberd if missing (the system service is not used: the tests start
# their own instance on a free loopback port with a generated config and test certificates).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! compgen -G "/usr/lib/*/ejabberd-*/ebin" > /dev/null; then
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ejabberd
fi
[[ -x .venv/bin/python ]] || scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider -m broker2 tests/sync/test_sync_broker2.py "$@"
