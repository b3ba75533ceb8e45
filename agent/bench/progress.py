"""A progress display on stderr: the bench takes minutes and a lab must see it is alive.

On a terminal one line is redrawn in place (phase, elapsed time, a short status); otherwise
each phase change is a plain line, so a CI log stays readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Phase-and-ticker progress lines. Not thread-safe: the bench thread alone writes."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self._out = stream if stream is not None else sys.stderr
        self._tty = self._out.isatty()
        self._quiet = quiet
        self._t0 = time.monotonic()
        self._phase = ""
        self._dirty = False

    def phase(self, name: str) -> None:
        """A new phase starts (always printed)."""
        self._phase = name
        self._line(f"{name}", final=True)

    def tick(self, text: str) -> None:
        """Live status within the phase (redrawn on a terminal, dropped otherwise)."""
        if self._tty:
            self._line(f"{self._phase}: {text}", final=False)

    def note(self, text: str) -> None:
        """A result worth keeping in the log."""
        self._line(f"  {text}", final=True)

    def done(self) -> None:
        """Finish the display."""
        if self._dirty:
            self._out.write("\n")
            self._dirty = False

    def _line(self, text: str, *, final: bool) -> None:
        if self._quiet:
            return
        el = int(time.monotonic() - self._t0)
        line = f"[bench {el // 60:02d}:{el % 60:02d}] {text}"
        if self._tty:
            self._out.write("\r\033[K" + line + ("\n" if final else ""))
            self._dirty = not final
        else:
            self._out.write(line + "\n")
        self._out.flush()
