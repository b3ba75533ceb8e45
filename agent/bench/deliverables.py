"""The lab's deliverables: ``report.html`` (self-contained), ``report.json`` and ``summary.md``.

The three are rendered from one document (:func:`build_document`), so the page a lab prints,
the file a machine reads and the summary pasted into a ticket cannot disagree.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from agent.atomic import atomic_write

from .figures import Figures
from .spec import Verdict
from .svg import histogram, line_chart

__all__ = ["build_document", "write_reports"]

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#222;
line-height:1.4}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #ccc;
padding-bottom:2px;margin-top:28px}
table{border-collapse:collapse;width:100%;font-size:13px;margin:8px 0}
th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}
.pass{background:#e3f4e3;color:#185c18;font-weight:bold}
.fail{background:#fbe3e1;color:#8b1a10;font-weight:bold}
.nm{background:#f4f1dc;color:#6a5d00}
.verdict{font-size:20px;padding:8px 12px;display:inline-block;margin:8px 0}
.small{font-size:12px;color:#555}svg{margin:6px 0;max-width:100%;height:auto}
"""


def build_document(*, meta: dict[str, Any], fig: Figures, verdicts: list[Verdict]) -> dict[
        str, Any]:
    """The report as one JSON-serialisable document."""
    counts = {k: sum(v.outcome == k for v in verdicts) for k in ("pass", "fail", "not measured")}
    return {
        "format": "bodycam-bench-report/1",
        "meta": meta,
        "result": "FAIL" if counts["fail"] else ("PASS" if counts["pass"] else "INCOMPLETE"),
        "counts": counts,
        "checks": [v.to_json() for v in verdicts],
        "figures": {k: {"value": m.value, "unit": m.unit, "detail": m.detail}
                    for k, m in sorted(fig.values.items())},
        "series": fig.series,
    }


def write_reports(doc: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the three files atomically; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "report.json": json.dumps(doc, indent=1, ensure_ascii=False, default=str) + "\n",
        "summary.md": _markdown(doc),
        "report.html": _html(doc),
    }
    paths = []
    for name, text in files.items():
        path = out_dir / name
        atomic_write(path, text.encode("utf-8"))
        paths.append(path)
    return paths


def _value(v: Any, unit: str) -> str:
    if unit == "bool" and v in (0, 1):
        return "yes" if v else "no"
    if v is None:
        return "—"
    if isinstance(v, float):
        v = f"{v:.3f}".rstrip("0").rstrip(".")
    return f"{v} {unit}".strip() if unit not in ("bool", "") else str(v)


def _markdown(doc: dict[str, Any]) -> str:
    m = doc["meta"]
    c = doc["counts"]
    lines = [f"# Bench report: {m.get('device_id', '?')} — **{doc['result']}**", "",
             f"{m.get('started_utc')} · hardware `{m.get('hw')}` · {m.get('minutes')} min "
             f"recording · faults: {', '.join(m.get('faults') or ['none'])}", "",
             f"{c['pass']} pass · {c['fail']} fail · {c['not measured']} not measured", "",
             "| result | check | clause | measured | required |", "|---|---|---|---|---|"]
    for ch in doc["checks"]:
        lines.append(f"| {ch['outcome']} | {ch['id']} | {ch['clause']} | "
                     f"{_value(ch['value'], ch['unit'])} | {_required(ch)} |")
    segs = doc["series"].get("segments") or []
    if segs:
        lines += ["", "| segment | file | C2PA |", "|---|---|---|"]
        lines += [f"| {r['seq']} | {r['file']} | {_c2pa_cell(r)} |" for r in segs]
    lines += ["", "Figures not confirmed against the text they cite are marked in report.html."]
    return "\n".join(lines) + "\n"


def _html(doc: dict[str, Any]) -> str:
    m, s = doc["meta"], doc["series"]
    cls = {"PASS": "pass", "FAIL": "fail"}.get(doc["result"], "nm")
    c = doc["counts"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Bench report {escape(str(m.get('device_id', '')))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Recorder bench report — {escape(str(m.get('device_id', '?')))}</h1>",
        f"<div class='small'>{escape(str(m.get('started_utc')))} · hardware "
        f"<b>{escape(str(m.get('hw')))}</b> · {escape(str(m.get('minutes')))} min recording · "
        f"software {escape(str(m.get('version')))} · faults injected: "
        f"<b>{escape(', '.join(m.get('faults') or ['none']))}</b></div>",
        f"<div class='verdict {cls}'>{doc['result']}: {c['pass']} pass, {c['fail']} fail, "
        f"{c['not measured']} not measured</div>",
        "<h2>Checks against the spec</h2>", _checks_table(doc["checks"]),
        "<p class='small'>Thresholds marked <i>unconfirmed</i> are the bench's reading of a "
        "quality or a commonly cited figure not checked against the standard's text; see "
        "each check's source.</p>",
        "<h2>Picture and cadence</h2>", _plot_intervals(s),
        "<h2>Audio/video synchronisation</h2>", _plot_av(s),
        "<h2>Battery and load</h2>", _plot_battery(s), _plot_cpu(s), _plot_rundown(s),
        "<h2>Storage</h2>", _plot_storage(doc),
        "<h2>Integrity</h2>", _tamper_table(s.get("tamper", [])),
        "<h2>Content Credentials (C2PA) per segment</h2>", _segments_table(s.get("segments", [])),
        "<h2>All measured figures</h2>", _figures_table(doc["figures"]),
        "<h2>Unit under test</h2>",
        f"<pre class='small'>{escape(str(m.get('config_text', '')))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _required(ch: dict[str, Any]) -> str:
    if ch["unit"] == "bool":
        return "yes" if ch["threshold"] == 1 else "no"
    return f"{ch['op']} {ch['threshold']} {ch['unit']}"


def _checks_table(checks: list[dict[str, Any]]) -> str:
    rows = ["<table><tr><th>result</th><th>clause</th><th>check</th><th>measured</th>"
            "<th>required</th><th>how measured · source of the figure</th></tr>"]
    for ch in checks:
        cls = {"pass": "pass", "fail": "fail"}.get(ch["outcome"], "nm")
        conf = "" if ch["confirmed"] else " <i>(unconfirmed)</i>"
        rows.append(
            f"<tr><td class='{cls}'>{escape(ch['outcome'])}</td><td>{escape(ch['clause'])}</td>"
            f"<td>{escape(ch['id'])}</td><td class='num'>{escape(_value(ch['value'], ch['unit']))}"
            f"</td><td class='num'>{escape(_required(ch))}</td><td class='small'>{escape(ch['detail'])}<br>"
            f"{escape(ch['source'])}{conf}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _figures_table(figs: dict[str, dict[str, Any]]) -> str:
    rows = ["<table><tr><th>figure</th><th>value</th><th>how</th></tr>"]
    for name, f in figs.items():
        rows.append(f"<tr><td>{escape(name)}</td><td class='num'>"
                    f"{escape(_value(f['value'], f['unit']))}</td>"
                    f"<td class='small'>{escape(str(f['detail']))}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _tamper_table(cases: list[dict[str, Any]]) -> str:
    if not cases:
        return "<p>The tamper suite did not run.</p>"
    rows = ["<table><tr><th>tamper case</th><th>target</th><th>caught</th>"
            "<th>what verify said</th></tr>"]
    for t in cases:
        cls = "pass" if t["detected"] else "fail"
        rows.append(f"<tr><td>{escape(t['case'])}</td><td>{escape(t['target'])}</td>"
                    f"<td class='{cls}'>{'yes' if t['detected'] else 'NO'}</td>"
                    f"<td class='small'>{escape(t['detail'])}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _c2pa_cell(row: dict[str, Any]) -> str:
    return row["c2pa"] if row["c2pa"] == "valid" else f"{row['c2pa']}: {row['c2pa_reason']}"


def _segments_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "<p>No segments were read.</p>"
    out = ["<table><tr><th>segment</th><th>file</th><th>C2PA</th><th>why</th></tr>"]
    for r in rows:
        cls = {"valid": "pass", "invalid": "fail"}.get(r["c2pa"], "nm")
        out.append(f"<tr><td class='num'>{r['seq']}</td><td>{escape(r['file'])}</td>"
                   f"<td class='{cls}'>{escape(r['c2pa'])}</td>"
                   f"<td class='small'>{escape(r['c2pa_reason'])}</td></tr>")
    out.append("</table><p class='small'>valid: the reference library validated the "
               "credential (signature, chain to the agency CA, hash binding); absent: the unit "
               "wrote none ([evidence] c2pa off, or a recovered segment).</p>")
    return "".join(out)


def _plot_intervals(s: dict[str, Any]) -> str:
    iv = s.get("frame_intervals_ms", [])
    gaps = s.get("segment_gaps", [])
    g = ", ".join(f"#{x['seq']}: {x['gap_ms']} ms" for x in gaps if x["gap_ms"] > 0)
    return (histogram(iv, title="Frame intervals over the whole recording (log count)",
                      xlabel="interval between consecutive frames (ms)",
                      marker=s.get("nominal_interval_ms"))
            + f"<p class='small'>Dashed line: nominal interval. Segment rolls losing media: "
              f"{escape(g) if g else 'none'}.</p>")


def _plot_av(s: dict[str, Any]) -> str:
    pts = [(p["t_s"], p["offset_ms"]) for p in s.get("av_offsets", [])]
    return line_chart([("offset (ms), positive = sound late", pts)],
                      title="A/V offset at each clapper flash", xlabel="time in recording (s)",
                      ylabel="beep − flash (ms)", points=True,
                      hlines=((60.0, "+60 ms"), (-40.0, "−40 ms"), (0.0, "")))


def _status_xy(s: dict[str, Any], key: str, scale: float = 1.0) -> list[tuple[float, float]]:
    st = s.get("status", [])
    if not st:
        return []
    t0 = st[0]["t"]
    return [(x["t"] - t0, float(x[key]) * scale) for x in st
            if isinstance(x.get(key), int | float)]


def _plot_battery(s: dict[str, Any]) -> str:
    return line_chart([("battery %", _status_xy(s, "battery_pct")),
                       ("draw (mW)", _status_xy(s, "battery_draw_mw"))],
                      title="Battery during the recording run", xlabel="bench time (s)",
                      ylabel="battery (%)", y2label="draw (mW)")


def _plot_cpu(s: dict[str, Any]) -> str:
    cpu = _status_xy(s, "cpu_pct")
    temp = _status_xy(s, "soc_temp_c")
    if not cpu and not temp:
        return "<p class='small'>CPU and temperature: not available on this unit.</p>"
    if not temp:
        return line_chart([("CPU (% of one core)", cpu)], title="Processor load (no SoC "
                          "temperature sensor on this machine)", xlabel="bench time (s)",
                          ylabel="CPU %")
    return line_chart([("CPU (% of one core)", cpu), ("SoC temperature (°C)", temp)],
                      title="Processor load and temperature", xlabel="bench time (s)",
                      ylabel="CPU %", y2label="°C")


def _plot_rundown(s: dict[str, Any]) -> str:
    rd = s.get("rundown", [])
    if not rd:
        return "<p class='small'>Battery rundown: not run on this unit.</p>"
    left = [(x["battery_t_min"], x["battery_recording_s"] / 60) for x in rd
            if isinstance(x.get("battery_recording_s"), int | float)]
    warn = s.get("rundown_warn_min")
    note = (f"warning at {warn} min of battery time" if warn is not None
            else "no warning before the end")
    return (line_chart([("recording time left (min)", left),
                        ("battery %", [(x["battery_t_min"], x["battery_pct"]) for x in rd
                                       if isinstance(x.get("battery_pct"), int | float)])],
                       title="Battery rundown (fast-forwarded)", xlabel="battery time (min)",
                       ylabel="minutes left", y2label="%",
                       hlines=((30.0, "30 min"), (5.0, "5 min")))
            + f"<p class='small'>{escape(note)}; end: {escape(str(s.get('rundown_end')))}.</p>")


def _plot_storage(doc: dict[str, Any]) -> str:
    f = doc["figures"]
    hours = (f.get("storage_recording_h") or {}).get("value")
    bps = (f.get("stored_bitrate_bps") or {}).get("value")
    if not isinstance(hours, int | float) or not isinstance(bps, int | float):
        return "<p class='small'>Storage projection: not measured.</p>"
    pts = [(h, max(0.0, 100.0 * (1 - h / hours))) for h in
           [i * hours / 40 for i in range(41)]] if hours > 0 else []
    return (line_chart([("free space (%)", pts)],
                       title="Storage projection at the measured bitrate",
                       xlabel="hours of recording", ylabel="free space left (%)",
                       hlines=((0.0, "full"),))
            + f"<p class='small'>{hours} h of recording fit at {bps / 1e6:.2f} Mbit/s stored "
              "(encrypted) bitrate.</p>")
