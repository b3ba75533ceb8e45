"""The wheel carries every package and the data the agent needs at run time."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_listed_packages_match_the_tree():
    """pyproject lists every package directory of agent/ and hw/ (nothing left out)."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("agent", "hw") for p in (ROOT / top).rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert listed == on_disk
