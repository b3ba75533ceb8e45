#!/usr/bin/env python3
"""Power-cut series: the whole agent on a file system that drops unsynced writes.

    .venv/bin/python scripts/powercut.py [--cuts 15] [--seed 947] [--work DIR]

Needs /dev/fuse and fuse3 (scripts/setup.sh installs them) and root (the mount). Prints the
figures (sealed segments lost, media lost per cut, pre-roll lost after a press, manifests
missing from the outbox, ``bodycam verify``) and exits non-zero if evidence was lost.
The measuring code is tests/tools/powercut.py; the default suite runs a 3-cut version of it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.tools.powercut import main  # (after the sys.path line: the repository root must be importable)

if __name__ == "__main__":
    sys.exit(main())
