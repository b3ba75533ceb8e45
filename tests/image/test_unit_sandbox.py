"""The agent's unit sandbox lets the Pi drivers work: GPIO, PiSugar, I²C.

There is no systemd to run the unit here, so the parts of its sandbox that broke real drivers
are rebuilt with ``unshare`` in a private mount namespace, with the values taken from
``bodycam.service`` itself: a read-only root (``ProtectSystem=strict``), a writable
``RuntimeDirectory`` on a fresh tmpfs under ``/run``, a private ``/tmp`` (``PrivateTmp=yes``),
and the unit's ``WorkingDirectory=`` and ``Environment=``. Inside it, a Python process does what
the driver does at start-up.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from hw.power_pisugar import PiSugarServerSim

REPO = Path(__file__).resolve().parents[2]
STAGE = REPO / "image-build" / "stage-bodycam" / "00-bodycam"
FILES = STAGE / "files"

pytestmark = pytest.mark.timeout(60)

needs_namespaces = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="builds the unit's sandbox with unshare and mounts (root)",
)


def _unit() -> dict[str, list[str]]:
    """bodycam.service's directives, every value kept."""
    directives: dict[str, list[str]] = {}
    for raw in (FILES / "bodycam.service").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "[")):
            continue
        key, _, value = line.partition("=")
        directives.setdefault(key, []).append(value)
    return directives


def _unit_environment() -> dict[str, str]:
    env: dict[str, str] = {}
    for value in _unit().get("Environment", []):
        for word in shlex.split(value):
            key, _, val = word.partition("=")
            env[key] = val
    return env


def _under_tmp(*paths: str) -> list[str]:
    """The outermost of ``paths`` that lie under /tmp (resolved), without duplicates."""
    found = sorted({os.path.realpath(p) for p in paths if os.path.realpath(p).startswith("/tmp/")})
    return [p for p in found if not any(p.startswith(q + "/") for q in found if q != p)]


def _sandboxed(python_code: str, *args: str, cwd: str, env: dict[str, str],
               runtime_dir: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``python_code`` as the unit would: read-only root, RuntimeDirectory, private /tmp."""
    setup = [
        "set -e",
        "mount --bind / / && mount -o remount,bind,ro /",  # ProtectSystem=strict
        "mount -t tmpfs -o size=1m tmpfs /run",
        # PrivateTmp=yes hides the host's /tmp; only the interpreter and this checkout are put
        # back when they live there (a CI clone under /tmp), nothing else of the host's /tmp.
        "mkdir /run/.host-tmp && mount --bind /tmp /run/.host-tmp",
        "mount -t tmpfs -o size=1m tmpfs /tmp",
    ]
    for keep in _under_tmp(sys.prefix, str(REPO)):
        rel = shlex.quote(keep.removeprefix("/tmp/"))
        setup.append(f"mkdir -p /tmp/{rel} && mount --bind /run/.host-tmp/{rel} /tmp/{rel}")
    setup += ["umount -l /run/.host-tmp", "rmdir /run/.host-tmp"]
    if runtime_dir is not None:
        setup.append(f"mkdir -p {shlex.quote(runtime_dir)}")  # RuntimeDirectory=
    setup.append(f"cd {shlex.quote(cwd)}")
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    argv = " ".join(shlex.quote(a) for a in (sys.executable, "-c", python_code, *args))
    setup.append(f"exec env {exports} {argv}")
    return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", "\n".join(setup)],
                          capture_output=True, text=True, timeout=40, check=False)


# What importing lgpio does, when the real library is not installed here (lg: lgUtil.c
# lguGetWorkDir and lgNotify.c lgNotifyOpen, called by lgpio.py's module-level callback thread):
# take $LG_WD or the current directory, chdir() there, create the FIFO .lgd-nfyN and open it.
_LGPIO_IMPORT = r"""
import os, sys
try:
    import lgpio  # noqa: F401  the real library, where it is installed
except ImportError:
    wd = os.environ.get("LG_WD") or os.getcwd()
    os.chdir(wd)
    os.mkfifo(".lgd-nfy0", 0o664)
    os.close(os.open(".lgd-nfy0", os.O_RDWR | os.O_NONBLOCK))
print("pipe in", os.getcwd(), sorted(n for n in os.listdir(".") if n.startswith(".lgd-nfy")))
"""


def _python_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO)}


def test_gpio_notification_pipe_goes_to_the_runtime_directory() -> None:
    """WorkingDirectory and LG_WD are the unit's own runtime directory (writable, per boot)."""
    unit = _unit()
    runtime = "/run/" + unit["RuntimeDirectory"][0]
    assert unit["WorkingDirectory"] == [runtime]
    assert _unit_environment()["LG_WD"] == runtime
    assert unit["ProtectSystem"] == ["strict"]  # the reason it must be there


@needs_namespaces
def test_lgpio_starts_in_the_unit_sandbox_and_fails_without_lg_wd() -> None:
    """In the rebuilt sandbox lgpio's pipe lands in /run/bodycam; from "/" (the unit's old
    working directory) without LG_WD it cannot be created, which was "cannot open the GPIO chip"."""
    unit = _unit()
    runtime = "/run/" + unit["RuntimeDirectory"][0]
    ok = _sandboxed(_LGPIO_IMPORT, cwd=unit["WorkingDirectory"][0],
                    env={**_python_env(), **_unit_environment()}, runtime_dir=runtime)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert f"pipe in {runtime} ['.lgd-nfy0']" in ok.stdout
    broken = _sandboxed(_LGPIO_IMPORT, cwd="/", env=_python_env(), runtime_dir=None)
    assert broken.returncode != 0
    assert ".lgd-nfy" in broken.stderr or "Read-only file system" in broken.stderr


_PISUGAR_READ = r"""
import ast, sys
from agent.config import parse_config
from hw.errors import DeviceMissing
from hw.power_select import select_power
power = parse_config({"power": {"source": "pisugar", **ast.literal_eval(sys.argv[1])}}).power
try:
    reading = select_power(power, throttle=None).read()
except DeviceMissing as exc:
    print("missing:", exc)
else:
    print("capacity", reading.capacity_pct)
"""


@needs_namespaces
def test_pisugar_is_reachable_from_the_unit_sandbox_over_tcp() -> None:
    """PrivateTmp hides pisugar-server's socket in the host's /tmp; its TCP port still answers,
    and the default configuration uses it."""
    assert _unit()["PrivateTmp"] == ["yes"]
    host_tmp = Path(tempfile.mkdtemp(prefix="bodycam-pisugar-", dir="/tmp"))
    try:
        with PiSugarServerSim(host_tmp / "pisugar-server.sock") as unix, PiSugarServerSim(None) as tcp:
            env = {**_python_env(), **_unit_environment()}
            via_socket = _sandboxed(_PISUGAR_READ, repr({"pisugar_socket": str(unix.socket_path)}),
                                    cwd="/", env=env, runtime_dir=None)
            via_tcp = _sandboxed(_PISUGAR_READ, repr({"pisugar_port": tcp.port}),
                                 cwd="/", env=env, runtime_dir=None)
    finally:
        shutil.rmtree(host_tmp, ignore_errors=True)
    assert via_socket.returncode == 0, via_socket.stderr[-2000:]
    assert "missing:" in via_socket.stdout and "unreachable" in via_socket.stdout
    assert via_tcp.returncode == 0, via_tcp.stderr[-2000:]
    assert "capacity 76.5" in via_tcp.stdout


def test_i2c_dev_is_loaded_before_the_agent_starts() -> None:
    """The stage loads i2c-dev at boot and the agent is ordered after the module loader, so
    /dev/i2c-1 exists (and char-i2c resolves for DeviceAllow=) when it starts."""
    modules = (FILES / "modules-load-bodycam.conf").read_text().split("\n")
    assert "i2c-dev" in [m.strip() for m in modules if not m.startswith("#")]
    run = (STAGE / "00-run.sh").read_text()
    assert 'files/modules-load-bodycam.conf "${ROOTFS_DIR}/etc/modules-load.d/bodycam.conf"' in run
    after = " ".join(_unit()["After"]).split()
    assert "systemd-modules-load.service" in after
    assert any(v.startswith("char-i2c ") for v in _unit()["DeviceAllow"])
