// The fleet map: Web Mercator into SVG. With no tile server, a plain graticule with
// coordinates and a scale bar; with the agency's tile server, its tiles under the same
// projection. Everything is drawn from data with createElementNS/textContent (no HTML
// strings), so nothing a unit publishes can inject markup.
"use strict";

const FleetMap = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 640, H = 480, TILE = 256;
  const COLOURS = ["#2b6cb0", "#2f855a", "#b7791f", "#6b46c1", "#c05621", "#00838f"];

  function el(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (parent) parent.appendChild(e);
    return e;
  }
  const wx = (lon, z) => (lon + 180) / 360 * TILE * 2 ** z;
  const wy = (lat, z) => {
    const s = Math.sin(lat * Math.PI / 180);
    return (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * TILE * 2 ** z;
  };
  const lonOf = (x, z) => x / (TILE * 2 ** z) * 360 - 180;
  const latOf = (y, z) => {
    const n = Math.PI - 2 * Math.PI * y / (TILE * 2 ** z);
    return 180 / Math.PI * Math.atan(Math.sinh(n));
  };

  function niceStep(span) {
    const raw = span / 5, p = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
    return 10 * p;
  }

  function view(points, integerZoom) {
    if (!points.length) return { z: 2, cx: wx(0, 2), cy: wy(20, 2) };
    let [s, n, w, e] = [90, -90, 180, -180];
    for (const [la, lo] of points) {
      s = Math.min(s, la); n = Math.max(n, la); w = Math.min(w, lo); e = Math.max(e, lo);
    }
    const pad = 0.002;
    s -= pad; n += pad; w -= pad; e += pad;
    let z = Math.min(Math.log2(W * 0.85 / (wx(e, 0) - wx(w, 0))),
                     Math.log2(H * 0.85 / (wy(s, 0) - wy(n, 0))), 18);
    if (integerZoom) z = Math.floor(z);
    return { z, cx: (wx(w, z) + wx(e, z)) / 2, cy: (wy(n, z) + wy(s, z)) / 2 };
  }

  function draw(svg, units, tracks, tileUrl, onPick) {
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const pts = [];
    for (const u of units) if (u.position) pts.push(u.position);
    for (const t of Object.values(tracks)) for (const p of t) pts.push(p);
    const v = view(pts, Boolean(tileUrl));
    const X = (lon) => wx(lon, v.z) - v.cx + W / 2;
    const Y = (lat) => wy(lat, v.z) - v.cy + H / 2;
    if (tileUrl) drawTiles(svg, v, tileUrl); else drawGrid(svg, v, X, Y);
    drawScale(svg, v);
    units.forEach((u, i) => {  // labels only while they stay readable; a tooltip always
      const colour = COLOURS[i % COLOURS.length];
      const t = tracks[u.device_id];
      if (t && t.length > 1) {
        el("polyline", { class: "track", stroke: colour,
          points: t.map(([la, lo]) => `${X(lo).toFixed(1)},${Y(la).toFixed(1)}`).join(" ") }, svg);
      }
      if (!u.position) return;
      const g = el("g", { class: "unit", "data-device": u.device_id,
        transform: `translate(${X(u.position[1]).toFixed(1)},${Y(u.position[0]).toFixed(1)})` }, svg);
      el("circle", { r: u.recording ? 7 : 5, fill: u.alarms ? "#c53030" : colour }, g);
      const name = u.device_id + (u.recording ? " ●REC" : "");
      el("title", {}, g).textContent = name;
      if (units.length <= 60 || u.alarms) el("text", { x: 9, y: 4 }, g).textContent = name;
      g.addEventListener("click", () => onPick(u.device_id));
    });
  }

  function drawGrid(svg, v, X, Y) {
    const west = lonOf(v.cx - W / 2, v.z), east = lonOf(v.cx + W / 2, v.z);
    const north = latOf(v.cy - H / 2, v.z), south = latOf(v.cy + H / 2, v.z);
    const step = niceStep(Math.max(east - west, north - south));
    const digits = Math.max(0, -Math.floor(Math.log10(step)));
    for (let lo = Math.ceil(west / step) * step; lo <= east; lo += step) {
      el("line", { class: "grid", x1: X(lo), x2: X(lo), y1: 0, y2: H }, svg);
      el("text", { class: "label", x: X(lo) + 2, y: H - 4 }, svg).textContent = lo.toFixed(digits) + "°";
    }
    for (let la = Math.ceil(south / step) * step; la <= north; la += step) {
      el("line", { class: "grid", x1: 0, x2: W, y1: Y(la), y2: Y(la) }, svg);
      el("text", { class: "label", x: 2, y: Y(la) - 2 }, svg).textContent = la.toFixed(digits) + "°";
    }
  }

  function drawTiles(svg, v, tileUrl) {
    const n = 2 ** v.z;
    const x0 = Math.floor((v.cx - W / 2) / TILE), x1 = Math.floor((v.cx + W / 2) / TILE);
    const y0 = Math.floor((v.cy - H / 2) / TILE), y1 = Math.floor((v.cy + H / 2) / TILE);
    for (let tx = x0; tx <= x1; tx++) for (let ty = y0; ty <= y1; ty++) {
      if (ty < 0 || ty >= n) continue;
      const href = tileUrl.replace("{z}", v.z).replace("{x}", ((tx % n) + n) % n).replace("{y}", ty);
      el("image", { href, x: tx * TILE - v.cx + W / 2, y: ty * TILE - v.cy + H / 2,
        width: TILE, height: TILE }, svg);
    }
  }

  function drawScale(svg, v) {
    const lat = latOf(v.cy, v.z);
    const mPerPx = 40075016.686 * Math.cos(lat * Math.PI / 180) / (TILE * 2 ** v.z);
    let metres = niceStep(mPerPx * 150) ;
    const px = metres / mPerPx;
    el("line", { class: "scale", x1: W - 20 - px, x2: W - 20, y1: H - 20, y2: H - 20 }, svg);
    const t = el("text", { class: "label", x: W - 20 - px, y: H - 25 }, svg);
    t.textContent = metres >= 1000 ? `${metres / 1000} km` : `${metres} m`;
    const c = el("text", { class: "label", x: 4, y: 12 }, svg);
    c.textContent = `centre ${lat.toFixed(5)}°, ${lonOf(v.cx, v.z).toFixed(5)}°`;
  }

  return { draw };
})();
