// The fleet console page: sign-in, live fleet table and map over Server-Sent Events, the
// unit view, and confirmed, audited actions. Plain DOM; every value a unit sends is set with
// textContent, never parsed as HTML.
"use strict";

const state = { me: null, units: new Map(), tracks: {}, open: null, source: null,
                drawPending: false };
const $ = (id) => document.getElementById(id);

async function api(path, body) {
  const opts = { credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    if (state.me) opts.headers["X-CSRF-Token"] = state.me.csrf;
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  let doc = null;
  try { doc = await r.json(); } catch (e) { doc = null; }
  if (!r.ok) throw Object.assign(new Error((doc && doc.error) || r.statusText), { status: r.status });
  return doc;
}

const dur = (s) => (s === null || s === undefined) ? "–"
  : s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor(s % 3600 / 60)).padStart(2, "0")}m`
  : s >= 60 ? `${Math.floor(s / 60)}m` : "<1m";
const gb = (b) => (b === null || b === undefined) ? "–" : `${(b / 1e9).toFixed(1)} GB`;

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function renderRow(u) {
  const tbody = $("fleet").tBodies[0];
  let tr = tbody.querySelector(`tr[data-device="${CSS.escape(u.device_id)}"]`);
  const fresh = document.createElement("tr");
  fresh.dataset.device = u.device_id;
  if (u.online === false) fresh.classList.add("offline");
  cell(fresh, u.device_id);
  cell(fresh, u.officer_id);
  cell(fresh, u.unit);
  const rec = cell(fresh, u.recording ? "● REC" : (u.recorder_state || "–"), u.recording ? "rec-cell" : "");
  rec.dataset.field = "recording";
  if (u.recording) { rec.textContent = ""; const s = document.createElement("span"); s.className = "rec"; s.textContent = "● REC"; rec.appendChild(s); }
  cell(fresh, u.matter);
  const batt = cell(fresh, u.battery_pct === null ? "–" : `${u.battery_pct}% · ${dur(u.battery_left_s)}`);
  if (u.battery_left_s !== null && u.battery_left_s < 1800) batt.classList.add("crit");
  else if (u.battery_left_s !== null && u.battery_left_s < 3600) batt.classList.add("warn");
  const store = cell(fresh, `${gb(u.storage_free_bytes)} · ${dur(u.storage_left_s)}`);
  if (u.storage_left_s !== null && u.storage_left_s < 1800) store.classList.add("crit");
  else if (u.storage_left_s !== null && u.storage_left_s < 3600) store.classList.add("warn");
  const fix = cell(fresh, u.gps_fix_age_s === null ? "no fix" : `${Math.round(u.gps_fix_age_s)} s`);
  if (u.gps_fix_age_s === null || u.gps_fix_age_s > 120) fix.classList.add("warn");
  const o = u.offload || {};
  cell(fresh, o.offload_backlog !== undefined ? `${o.offload_backlog} seg · ${gb(o.offload_backlog_bytes)}` : "–",
       o.offload_backlog > 0 ? "warn" : "");
  cell(fresh, u.witness);
  const al = cell(fresh, u.alarms ? `${u.alarms} ⚠ ${u.last_alarm ? u.last_alarm.kind : ""}` : "", u.alarms ? "alarm-cell" : "");
  al.dataset.field = "alarms";
  fresh.addEventListener("click", () => openUnit(u.device_id));
  if (tr) tbody.replaceChild(fresh, tr);
  else {
    const after = [...tbody.rows].find((r) => r.dataset.device > u.device_id);
    tbody.insertBefore(fresh, after || null);
  }
  $("count").textContent = `(${state.units.size})`;
}

function scheduleMap() {
  if (state.drawPending) return;
  state.drawPending = true;
  requestAnimationFrame(() => {
    state.drawPending = false;
    FleetMap.draw($("map"), [...state.units.values()], state.tracks, state.me.tile_url, openUnit);
  });
}

function merge(rows) {
  for (const u of rows) {
    state.units.set(u.device_id, u);
    if (u.position) {
      const t = state.tracks[u.device_id] || (state.tracks[u.device_id] = []);
      const last = t[t.length - 1];
      if (!last || last[0] !== u.position[0] || last[1] !== u.position[1]) t.push(u.position);
      if (t.length > 3000) t.splice(0, t.length - 3000);
    }
    renderRow(u);
  }
  scheduleMap();
  if (state.open && rows.some((u) => u.device_id === state.open)) refreshUnit();
}

function showAlarm(a) {
  const div = document.createElement("div");
  div.className = "alarm";
  div.dataset.device = a.device_id;
  div.textContent = `ALARM ${a.device_id}: ${a.kind} — ${a.detail || ""} (${a.at})`;
  $("alarms").prepend(div);
  while ($("alarms").children.length > 10) $("alarms").lastChild.remove();
}

function toast(text) { $("toast").textContent = text; }

function connect() {
  if (state.source) state.source.close();
  const src = new EventSource("/console/api/stream");
  state.source = src;
  src.addEventListener("open", () => { $("link").textContent = "live"; $("link").className = "link up"; });
  src.addEventListener("error", async () => {
    $("link").textContent = "reconnecting"; $("link").className = "link down";
    try { await api("/console/api/me"); } catch (e) { if (e.status === 401) signedOut(); }
  });
  src.addEventListener("snapshot", (ev) => {
    state.units.clear();
    $("fleet").tBodies[0].replaceChildren();
    merge(JSON.parse(ev.data));
  });
  src.addEventListener("rows", (ev) => merge(JSON.parse(ev.data)));
  src.addEventListener("alarm", (ev) => showAlarm(JSON.parse(ev.data)));
  src.addEventListener("ack", (ev) => {
    const a = JSON.parse(ev.data);
    toast(`${a.device_id}: ${a.command} ${a.status}${a.reason ? " — " + a.reason : ""} (by ${a.user})`);
  });
}

async function openUnit(id) {
  state.open = id;
  $("unit").hidden = false;
  $("unit-id").textContent = id;
  await refreshUnit();
  $("unit").scrollIntoView({ block: "nearest" });
}

function list(ul, items, fmt) {
  ul.replaceChildren(...items.map((x) => { const li = document.createElement("li"); li.textContent = fmt(x); return li; }));
}

async function refreshUnit() {
  const id = state.open;
  let d;
  try { d = await api(`/console/api/units/${encodeURIComponent(id)}`); } catch (e) { toast(e.message); return; }
  if (state.open !== id) return;
  $("unit-summary").textContent = `${d.recording ? "RECORDING" : (d.recorder_state || "state unknown")}` +
    ` · officer ${d.officer_id || "–"} · matter ${d.matter || "–"} · battery ${d.battery_pct ?? "–"}%` +
    ` (${dur(d.battery_left_s)}) · storage ${gb(d.storage_free_bytes)} (${dur(d.storage_left_s)})`;
  const s = d.series || [];
  Charts.line($("chart-battery"), s.map((p) => [p[0], p[1]]), { min: 0, max: 100 });
  Charts.line($("chart-storage"), s.map((p) => [p[0], p[2] === null ? null : p[2] / 1e9]), { digits: 1 });
  Charts.line($("chart-bitrate"), s.map((p) => [p[0], p[3] === null ? null : p[3] / 1000]), {});
  const tb = $("recordings").tBodies[0];
  tb.replaceChildren(...(d.recordings || []).map((r) => {
    const tr = document.createElement("tr");
    cell(tr, r.device_seq); cell(tr, (r.recording_id || "").slice(0, 8)); cell(tr, r.seq);
    cell(tr, r.bytes); cell(tr, r.stored_utc);
    cell(tr, r.receipt && r.receipt.signature ? "signed" : "–"); cell(tr, r.state);
    return tr;
  }));
  // the monitor's MQTT alarm and the station's alarms table name the same event once each
  const seen = new Set();
  const alarms = [...(d.alarm_list || []), ...(d.station_alarms || [])].filter((a) => {
    const key = `${a.at}|${a.kind}|${a.detail}`;
    return seen.has(key) ? false : (seen.add(key), true);
  });
  list($("unit-alarms"), alarms, (a) => `${a.at} ${a.kind}: ${a.detail}`);
  list($("unit-events"), (d.events || []).slice(-30).reverse(), (e) => `${e.at} ${e.type || "event"} #${e.seq ?? ""}`);
  list($("unit-audit"), d.audit || [], (a) => `${a.at} ${a.user} ${a.action}: ${a.detail} → ${a.outcome}`);
}

function confirmDialog(text) {
  return new Promise((resolve) => {
    const dlg = $("confirm");
    $("confirm-text").textContent = text;
    dlg.addEventListener("close", () => resolve(dlg.returnValue === "ok"), { once: true });
    dlg.showModal();
  });
}

async function act(action) {
  const id = state.open;
  const body = {};
  let what = { start: "START recording on", bookmark: "BOOKMARK the recording of",
               matter: "ASSIGN a matter to", stop: "STOP recording on" }[action];
  if (action === "bookmark") body.label = `bookmark by ${state.me.username}`;
  if (action === "matter") { body.code = $("matter-code").value; what += ` (${body.code})`; }
  if (action === "stop") {
    body.reason = $("stop-reason").value.trim();
    if (body.reason.length < 4) { toast("Type the reason for stopping first."); $("stop-reason").focus(); return; }
    what += ` — reason: “${body.reason}”`;
  }
  if (!await confirmDialog(`${what} ${id}? This is recorded as your act (${state.me.username}).`)) return;
  try {
    const r = await api(`/console/api/units/${encodeURIComponent(id)}/${action}`, body);
    toast(`${id}: ${r.detail} — sent`);
    if (action === "stop") $("stop-reason").value = "";
  } catch (e) { toast(`${id}: ${action} refused — ${e.message}`); }
  refreshUnit();
}

async function signedIn(me) {
  state.me = me;
  $("login").hidden = true; $("app").hidden = false; $("signout").hidden = false;
  $("who").textContent = `${me.username} (${me.role})`;
  for (const b of $("actions").querySelectorAll("button")) b.disabled = !me.may_act;
  $("actions").hidden = !me.may_act;
  try {
    const matters = await api("/console/api/matters");
    $("matter-code").replaceChildren(...matters.map((m) => { const o = document.createElement("option"); o.value = m.code; o.textContent = `${m.code} ${m.name}`; return o; }));
    state.tracks = await api("/console/api/tracks");
  } catch (e) { toast(e.message); }
  connect();
}

function signedOut() {
  if (state.source) state.source.close();
  state.me = null;
  $("login").hidden = false; $("app").hidden = true; $("signout").hidden = true;
  $("who").textContent = "";
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      await signedIn(await api("/console/api/login", { username: $("login-user").value, password: $("login-password").value }));
      $("login-password").value = "";
    } catch (e) { $("login-error").textContent = e.message; }
  });
  $("signout").addEventListener("click", async () => { try { await api("/console/api/logout", {}); } catch (e) { /* gone already */ } signedOut(); });
  $("unit-close").addEventListener("click", () => { state.open = null; $("unit").hidden = true; });
  for (const b of $("actions").querySelectorAll("button")) b.addEventListener("click", () => act(b.dataset.action));
  try { await signedIn(await api("/console/api/me")); } catch (e) { signedOut(); }
});
