// Small SVG line charts for the unit view (battery, storage, bitrate over the shift).
"use strict";

const Charts = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 360, H = 140, L = 36, B = 18, T = 6, R = 6;
  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }
  const hhmm = (t) => new Date(t * 1000).toISOString().slice(11, 16);

  function line(svg, points, opts) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const pts = points.filter((p) => p[1] !== null && Number.isFinite(p[1]));
    el("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }, svg);
    el("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }, svg);
    if (pts.length === 0) {
      el("text", { x: L + 10, y: H / 2 }, svg).textContent = "no data yet";
      return;
    }
    const t0 = pts[0][0], t1 = Math.max(pts[pts.length - 1][0], t0 + 60);
    const lo = opts.min ?? Math.min(...pts.map((p) => p[1]));
    let hi = opts.max ?? Math.max(...pts.map((p) => p[1]));
    if (hi <= lo) hi = lo + 1;
    const x = (t) => L + (t - t0) / (t1 - t0) * (W - L - R);
    const y = (v) => H - B - (v - lo) / (hi - lo) * (H - B - T);
    el("polyline", { class: "line",
      points: pts.map((p) => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join(" ") }, svg);
    el("text", { x: 2, y: T + 8 }, svg).textContent = hi.toFixed(opts.digits ?? 0);
    el("text", { x: 2, y: H - B }, svg).textContent = lo.toFixed(opts.digits ?? 0);
    el("text", { x: L, y: H - 4 }, svg).textContent = hhmm(t0);
    el("text", { x: W - R - 28, y: H - 4 }, svg).textContent = hhmm(t1);
  }
  return { line };
})();
