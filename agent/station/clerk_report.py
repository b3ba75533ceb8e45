"""The bundle's verification report as a page a court clerk can read.

Plain words first (what the recording is, what was checked, what each result means), then how
anyone re-checks it with stock tools — the recipes of docs/EVIDENCE-FORMAT.md, a copy of which
is in the bundle. Every value from the evidence is HTML-escaped: a manifest is untrusted text.
"""

from __future__ import annotations

import html
from typing import Any

from agent.evidence.bundle import HASH_LIST, BundleReport
from agent.matters.coverage import RecordingCoverage
from agent.matters.render import render_coverage

__all__ = ["MEANING", "render_html"]

#: What each finding code means, for a reader who is not an engineer.
MEANING = {
    "segment": "The segment's manifest is signed by the camera's key, the encrypted file and the "
               "decrypted video are exactly the ones the camera recorded, the station signed a "
               "receipt for exactly this segment, and the camera's own tamper-evident log "
               "contains it.",
    "history": "The camera's signed log, as the station last saw it. Every segment above is in "
               "this one history.",
    "history_unlinked": "The station kept no proof linking this segment's log state to the "
                        "newest one; each segment is still proven in the log it was uploaded "
                        "with.",
    "witness": "The station, acting as a witness of the camera's log, countersigned the newest "
               "log state it holds: it saw this history and no conflicting one.",
    "joined": "The joined video holds exactly the frames of the segments, no more and no fewer. "
              "It is made for viewing; the segments are the evidence.",
    "self_trusted_keys": "The keys used are those carried in this bundle. To rule out a "
                         "wholesale forgery, check them against the keys the agency registered "
                         "(commands below).",
    "no_inclusion_proof": "The station stored this segment before it kept log proofs; its "
                          "signature, hashes and receipt are still checked.",
    "no_joined_media": "No joined video was made.",
    "truncated": "The camera lost power while recording this segment; the video ends where the "
                 "last complete encrypted block ends.",
    "forged_signature": "The manifest is NOT signed by the camera's key.",
    "media_altered": "The encrypted file is NOT the one the camera recorded.",
    "plaintext_altered": "The decrypted video is NOT the one the camera recorded.",
    "receipt_invalid": "The station's receipt does not match this segment or its signature.",
    "not_in_log": "The segment could NOT be shown to be in the camera's log.",
    "fork": "A log proof does NOT check out: the camera's history may have been rewritten.",
    "joined_frames": "The joined video does NOT hold exactly the segments' frames.",
}

_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;line-height:1.4}"
          "td,th{border:1px solid #999;padding:.3em .5em;text-align:left;vertical-align:top}"
          "table{border-collapse:collapse}.fail{color:#a00;font-weight:bold}.ok{color:#070}"
          "pre{background:#f4f4f4;padding:.6em;overflow-x:auto}")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def render_html(marker: dict[str, Any], report: BundleReport, cov: RecordingCoverage) -> str:
    """The report page (module doc)."""
    verdict = ("Every check passed." if report.ok else
               "One or more checks FAILED: see the rows marked FAIL.")
    rows = "".join(
        f"<tr><td class='{_e(lv)}'>{_e(lv.upper())}</td><td>{_e(where)}</td><td>{_e(msg)}"
        f"<br><small>{_e(MEANING.get(code, ''))}</small></td></tr>"
        for lv, code, where, msg in report.findings)
    facts = [("Recording", marker["recording_id"]), ("Camera (device)", marker["device_id"]),
             ("Officer", marker.get("officer_id") or "not recorded"),
             ("Matter(s)", ", ".join(marker.get("matters") or []) or "none assigned"),
             ("Start (UTC)", marker.get("start_utc")), ("End (UTC)", marker.get("end_utc")),
             ("Segments", len(marker["segments"])), ("Station", marker["station_id"]),
             ("Exported (UTC)", marker["exported_utc"]), ("Exported by", marker["exported_by"]),
             ("Witness cosignatures", "the station's witness, over the newest checkpoint it "
              "holds" if marker.get("witness") else "none held")]
    fact_rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts)
    coverage = _e("\n".join(render_coverage(cov)))
    first = marker["segments"][0]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Evidence bundle {_e(marker['recording_id'][:8])}</title>
<style>{_STYLE}</style></head><body>
<h1>Evidence bundle: verification report</h1>
<p>This folder holds one body-camera recording as the agency's collection station received it,
with everything needed to check, offline and without our software, that it is exactly what the
camera recorded. <b>{_e(verdict)}</b></p>
<table>{fact_rows}</table>
<h2>What was checked</h2>
<table><tr><th>result</th><th>what</th><th>finding, and what it means</th></tr>{rows}</table>
<p>Every file of this folder is listed with its SHA-256 in <code>{HASH_LIST}</code>; the
station recorded the SHA-256 of that list when it made this bundle, so any later change to any
file — one flipped bit — is detectable.</p>
<h2>Matter checklist coverage</h2>
<pre>{coverage}</pre>
<h2>How to re-check it yourself</h2>
<p>With our tool: <code>bodycam verify THIS_FOLDER --pubkey REGISTERED_DEVICE.pub
--station-key STATION.pub</code> (the keys from the agency's enrolment records, not from this
folder). With stock tools, following <a href="EVIDENCE-FORMAT.md">EVIDENCE-FORMAT.md</a> (copied
here):</p>
<pre>sha256sum -c {HASH_LIST}                      # every file is as exported
# a manifest's signature (EVIDENCE-FORMAT.md section 3, recipe manifest-signature):
M={_e(first['manifest'])}  PUB=keys/device.pub  MEDIA={_e(first['media'])}
# the decrypted segment is the one signed:
sha256sum {_e(first['decrypted'])}   # equals the manifest's file.plain_sha256
age -d -i agency.key {_e(first['media'])} | sha256sum   # the same, from the encrypted file
# a segment is in the camera's log (section 7, recipe inclusion), and the log is signed (section 5):
python3 inclusion.py {_e(first.get('inclusion') or 'proofs/inclusion-….json')}
# the joined video has every frame (sum of the segments'):
ffprobe -v error -count_packets -show_entries stream=codec_type,nb_read_packets \
  {_e(marker['joined']['file'])}</pre>
</body></html>
"""
