"""A 5×7 bitmap font for burned-in overlays.

Overlays must be cheap (a slow ``pre_callback`` drops frames), so glyphs are pre-rendered
once into numpy masks and stamped with slicing; no font library is loaded on the device.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["GLYPH_H", "GLYPH_W", "render_text"]

GLYPH_W, GLYPH_H = 5, 7

# Each glyph: 7 rows, each row a 5-bit number (MSB = leftmost pixel).
_GLYPHS: dict[str, tuple[int, ...]] = {
    " ": (0, 0, 0, 0, 0, 0, 0),
    "0": (14, 17, 19, 21, 25, 17, 14),
    "1": (4, 12, 4, 4, 4, 4, 14),
    "2": (14, 17, 1, 2, 4, 8, 31),
    "3": (31, 2, 4, 2, 1, 17, 14),
    "4": (2, 6, 10, 18, 31, 2, 2),
    "5": (31, 16, 30, 1, 1, 17, 14),
    "6": (6, 8, 16, 30, 17, 17, 14),
    "7": (31, 1, 2, 4, 8, 8, 8),
    "8": (14, 17, 17, 14, 17, 17, 14),
    "9": (14, 17, 17, 15, 1, 2, 12),
    "A": (14, 17, 17, 31, 17, 17, 17),
    "B": (30, 17, 17, 30, 17, 17, 30),
    "C": (14, 17, 16, 16, 16, 17, 14),
    "D": (28, 18, 17, 17, 17, 18, 28),
    "E": (31, 16, 16, 30, 16, 16, 31),
    "F": (31, 16, 16, 30, 16, 16, 16),
    "G": (14, 17, 16, 23, 17, 17, 15),
    "H": (17, 17, 17, 31, 17, 17, 17),
    "I": (14, 4, 4, 4, 4, 4, 14),
    "J": (7, 2, 2, 2, 2, 18, 12),
    "K": (17, 18, 20, 24, 20, 18, 17),
    "L": (16, 16, 16, 16, 16, 16, 31),
    "M": (17, 27, 21, 21, 17, 17, 17),
    "N": (17, 17, 25, 21, 19, 17, 17),
    "O": (14, 17, 17, 17, 17, 17, 14),
    "P": (30, 17, 17, 30, 16, 16, 16),
    "Q": (14, 17, 17, 17, 21, 18, 13),
    "R": (30, 17, 17, 30, 20, 18, 17),
    "S": (15, 16, 16, 14, 1, 1, 30),
    "T": (31, 4, 4, 4, 4, 4, 4),
    "U": (17, 17, 17, 17, 17, 17, 14),
    "V": (17, 17, 17, 17, 17, 10, 4),
    "W": (17, 17, 17, 21, 21, 21, 10),
    "X": (17, 17, 10, 4, 10, 17, 17),
    "Y": (17, 17, 17, 10, 4, 4, 4),
    "Z": (31, 1, 2, 4, 8, 16, 31),
    "-": (0, 0, 0, 31, 0, 0, 0),
    ":": (0, 12, 12, 0, 12, 12, 0),
    ".": (0, 0, 0, 0, 0, 12, 12),
    "/": (0, 1, 2, 4, 8, 16, 0),
    "_": (0, 0, 0, 0, 0, 0, 31),
    "#": (10, 10, 31, 10, 31, 10, 10),
    "+": (0, 4, 4, 31, 4, 4, 0),
}
_UNKNOWN = (31, 17, 17, 17, 17, 17, 31)


def _mask(rows: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    bits = [[(r >> (GLYPH_W - 1 - c)) & 1 for c in range(GLYPH_W)] for r in rows]
    return np.array(bits, dtype=bool)


_MASKS = {ch: _mask(rows) for ch, rows in _GLYPHS.items()}
_UNKNOWN_MASK = _mask(_UNKNOWN)
_CACHE: dict[tuple[str, int], npt.NDArray[np.bool_]] = {}


def _glyph(ch: str, scale: int) -> npt.NDArray[np.bool_]:
    key = (ch, scale)
    g = _CACHE.get(key)
    if g is None:
        base = _MASKS.get(ch.upper(), _UNKNOWN_MASK)
        g = np.kron(base, np.ones((scale, scale), dtype=bool)).astype(bool)
        _CACHE[key] = g
    return g


def render_text(text: str, scale: int = 2) -> npt.NDArray[np.bool_]:
    """A boolean mask of ``text`` (one pixel of spacing between glyphs, at ``scale``)."""
    h, w = GLYPH_H * scale, (GLYPH_W + 1) * scale
    out = np.zeros((h, max(1, len(text)) * w), dtype=bool)
    for i, ch in enumerate(text):
        out[:, i * w : i * w + GLYPH_W * scale] = _glyph(ch, scale)
    return out
