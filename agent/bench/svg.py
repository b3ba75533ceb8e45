"""Inline SVG plots for the bench report: no scripts, no external assets, print-friendly.

Two chart kinds are enough for a lab report: a histogram and an x/y line chart with one or two
series (the second on its own right-hand axis). Everything is escaped; sizes are fixed so the
report lays out the same in every browser.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

__all__ = ["histogram", "line_chart"]

_W, _H = 760, 260
_L, _R, _T, _B = 64, 64, 28, 44
_COLOURS = ("#1f5fa8", "#c0392b", "#2e8b57")


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.3g}"


def _frame(title: str, xlabel: str, ylabel: str, y2label: str = "") -> list[str]:
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" '
           f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{escape(title)}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{_W}" height="{_H}" fill="#fff"/>',
           f'<text x="{_W / 2}" y="16" text-anchor="middle" font-weight="bold">'
           f'{escape(title)}</text>',
           f'<text x="{_W / 2}" y="{_H - 6}" text-anchor="middle">{escape(xlabel)}</text>',
           f'<text transform="translate(14,{_H / 2}) rotate(-90)" text-anchor="middle">'
           f'{escape(ylabel)}</text>']
    if y2label:
        out.append(f'<text transform="translate({_W - 10},{_H / 2}) rotate(90)" '
                   f'text-anchor="middle">{escape(y2label)}</text>')
    return out


def _axes(out: list[str], xr: tuple[float, float], yr: tuple[float, float],
          y2r: tuple[float, float] | None = None, *, log_y: bool = False) -> None:
    pw, ph = _W - _L - _R, _H - _T - _B
    out.append(f'<rect x="{_L}" y="{_T}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for x in _ticks(*xr):
        px = _L + (x - xr[0]) / (xr[1] - xr[0] or 1) * pw
        out.append(f'<line x1="{px:.1f}" y1="{_T + ph}" x2="{px:.1f}" y2="{_T + ph + 4}" '
                   'stroke="#666"/>')
        out.append(f'<text x="{px:.1f}" y="{_T + ph + 16}" text-anchor="middle">{_fmt(x)}</text>')
    yticks = [float(k) for k in range(int(yr[1]) + 1)] if log_y else _ticks(*yr)
    for y in yticks:
        py = _T + ph - (y - yr[0]) / (yr[1] - yr[0] or 1) * ph
        label = _fmt(10 ** y) if log_y else _fmt(y)
        out.append(f'<line x1="{_L}" y1="{py:.1f}" x2="{_L + pw}" y2="{py:.1f}" '
                   'stroke="#eee"/>')
        out.append(f'<text x="{_L - 6}" y="{py + 4:.1f}" text-anchor="end">{label}</text>')
    if y2r is not None:
        for y in _ticks(*y2r):
            py = _T + ph - (y - y2r[0]) / (y2r[1] - y2r[0] or 1) * ph
            out.append(f'<text x="{_L + pw + 6}" y="{py + 4:.1f}" fill="{_COLOURS[1]}">'
                       f'{_fmt(y)}</text>')


def _range(vals: Sequence[float], *, zero: bool = False) -> tuple[float, float]:
    lo, hi = min(vals), max(vals)
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi == lo:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.05
    return lo - pad, hi + pad


def histogram(values: Sequence[float], *, title: str, xlabel: str, bins: int = 40,
              marker: float | None = None) -> str:
    """Counts of ``values`` in ``bins`` equal bins, on a log-count axis (rare outliers show)."""
    out = _frame(title, xlabel, "frames (log scale)")
    if not values:
        out.append(f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(out)
    lo, hi = _range(values)
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / width))] += 1
    top = max(1.0, math.log10(max(counts)) * 1.05)
    _axes(out, (lo, hi), (0, top), log_y=True)
    pw, ph = _W - _L - _R, _H - _T - _B
    for i, c in enumerate(counts):
        if not c:
            continue
        h = max(2.0, math.log10(c) / top * ph)  # a single frame still shows
        x = _L + i / bins * pw
        out.append(f'<rect x="{x:.1f}" y="{_T + ph - h:.1f}" width="{max(1.0, pw / bins - 1):.1f}"'
                   f' height="{h:.1f}" fill="{_COLOURS[0]}"><title>{_fmt(lo + i * width)}–'
                   f'{_fmt(lo + (i + 1) * width)}: {c}</title></rect>')
    if marker is not None and lo <= marker <= hi:
        px = _L + (marker - lo) / (hi - lo) * pw
        out.append(f'<line x1="{px:.1f}" y1="{_T}" x2="{px:.1f}" y2="{_T + ph}" '
                   'stroke="#2e8b57" stroke-width="2" stroke-dasharray="4 3"/>')
    out.append("</svg>")
    return "".join(out)


def line_chart(series: Sequence[tuple[str, Sequence[tuple[float, float]]]], *, title: str,
               xlabel: str, ylabel: str, y2label: str = "", points: bool = False,
               hlines: Sequence[tuple[float, str]] = ()) -> str:
    """One or two x/y series; a second series gets its own right-hand axis."""
    out = _frame(title, xlabel, ylabel, y2label)
    data = [(name, list(pts)) for name, pts in series if pts]
    if not data:
        out.append(f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">no data</text></svg>')
        return "".join(out)
    xs = [x for _, pts in data for x, _ in pts]
    xr = _range(xs)
    first = [y for _, y in data[0][1]] + [h for h, _ in hlines]
    yr = _range(first, zero=bool(hlines))
    y2r = _range([y for _, y in data[1][1]]) if len(data) > 1 else None
    _axes(out, xr, yr, y2r)
    pw, ph = _W - _L - _R, _H - _T - _B
    for value, label in hlines:
        py = _T + ph - (value - yr[0]) / (yr[1] - yr[0]) * ph
        out.append(f'<line x1="{_L}" y1="{py:.1f}" x2="{_L + pw}" y2="{py:.1f}" stroke="#888" '
                   f'stroke-dasharray="5 4"/><text x="{_L + 4}" y="{py - 4:.1f}" fill="#555">'
                   f'{escape(label)}</text>')
    for i, (name, pts) in enumerate(data[:2]):
        rng = yr if i == 0 else y2r
        assert rng is not None
        colour = _COLOURS[i]
        coords = [(_L + (x - xr[0]) / (xr[1] - xr[0]) * pw,
                   _T + ph - (y - rng[0]) / (rng[1] - rng[0]) * ph) for x, y in pts]
        if points:
            out.extend(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="{colour}"/>'
                       for cx, cy in coords)
        else:
            path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
            out.append(f'<polyline points="{path}" fill="none" stroke="{colour}" '
                       'stroke-width="1.5"/>')
        out.append(f'<text x="{_L + 8 + i * 220}" y="{_T + 14}" fill="{colour}">'
                   f'■ {escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
