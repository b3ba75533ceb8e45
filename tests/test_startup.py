"""`bodycam ctl` starts fast: nothing heavy is imported on its path.

A body camera's status LED scripts, the lab bench and the station's health probe run
``bodycam ctl`` many times; on a Pi Zero 2 W every 10 ms of import is ~80 ms. The checks read
``python -X importtime`` of the real entry point, so an import added on the path fails them.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Modules that cost tens of milliseconds (or probe hardware) and that ctl never needs.
_HEAVY = ("importlib.metadata", "agent.command.ctl_server", "logging", "threading", "typing", "shutil",
          "av", "numpy", "cryptography", "paho", "serial", "gpiozero", "pyaudio", "agent.app",
          "agent.config", "agent.recording.controller", "hw.factory", "sqlite3",
          # a plain ctl line needs neither: the client reads it and talks through _socket
          "argparse", "socket", "selectors")


def _imported_by(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                         text=True, check=True, timeout=60).stderr
    return {line.split("|")[-1].strip() for line in out.splitlines()
            if line.startswith("import time:") and "|" in line}


def test_ctl_path_imports_nothing_heavy(tmp_path: Path) -> None:
    """Parsing a ctl command and failing to reach an agent imports none of the heavy modules."""
    code = ("import sys; from agent.cli import main; "
            f"sys.exit(main(['ctl', 'status', '--data-dir', {str(tmp_path)!r}]) != 1)")
    mods = _imported_by(code)
    assert "agent.command.ctl_client" in mods, "the check did not reach the control client"
    heavy = sorted(m for m in mods if m.split(".")[0] in _HEAVY or m in _HEAVY)
    assert not heavy, f"imported on the ctl path: {heavy}"


def test_version_is_static_and_matches_the_package() -> None:
    """agent.__version__ needs no metadata lookup and equals pyproject's version."""
    import agent

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert agent.__version__ == project["version"]
    assert "importlib.metadata" not in _imported_by("import agent")
