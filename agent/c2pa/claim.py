"""What a segment's C2PA manifest says, derived only from its signed evidence manifest.

Pure functions, no I/O: the same signed manifest always yields the same manifest definition
(the library adds the instance id, the signature and the hard binding).

The two records point at each other in one verifiable direction. The C2PA manifest carries, in
the ``org.bodycam_agent.evidence`` assertion, the SHA-256 of the signed evidence manifest (the
``manifest_sha256`` that the evidence log's segment leaf commits to); the evidence manifest
already carries ``file.plain_sha256``, which is exactly the C2PA ``c2pa.hash.data`` hard
binding. So: C2PA claim → evidence manifest hash → log leaf (signed checkpoint), and evidence
manifest → plaintext hash ← C2PA hard binding. The other direction (the evidence manifest
naming the C2PA claim) would need the C2PA signature before the evidence signature, and the C2PA
claim could then no longer name the evidence manifest: one direction must win, and this one
changes nothing in the evidence format.

Location goes into ``c2pa.metadata`` as EXIF GPS fields only when the segment has a fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent import __version__

__all__ = ["ASSERTION_LABEL", "DIGITAL_CAPTURE", "definition_for", "media_format", "plain_name"]

ASSERTION_LABEL = "org.bodycam_agent.evidence"
DIGITAL_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
_GENERATOR = "bodycam-agent"
_XMP_CONTEXT = {"exif": "http://ns.adobe.com/exif/1.0/", "xmp": "http://ns.adobe.com/xap/1.0/"}


def plain_name(file_name: str) -> str:
    """The decrypted file's name: ``….mp4.age`` → ``….mp4`` (what a reader is given)."""
    return file_name.removesuffix(".age")


def media_format(manifest: Mapping[str, Any]) -> str:
    """MIME type of the decrypted segment: a still, audio-only MP4 or video MP4."""
    name = plain_name(str(manifest["file"]["name"]))
    if name.endswith((".jpg", ".jpeg")):
        return "image/jpeg"
    media = manifest.get("media") or {}
    if media.get("video") is None and media.get("audio") is not None:
        return "audio/mp4"
    return "video/mp4"


def definition_for(manifest: Mapping[str, Any], manifest_sha256: str) -> dict[str, Any]:
    """The C2PA manifest definition for one sealed segment (``manifest`` is the signed one)."""
    agent = {"name": _GENERATOR, "version": __version__}
    start = manifest["start"]["utc"]
    assertions: list[dict[str, Any]] = [
        {"label": "c2pa.actions.v2",
         "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": DIGITAL_CAPTURE,
                               "when": start, "softwareAgent": agent}]}},
        {"label": ASSERTION_LABEL, "data": evidence_assertion(manifest, manifest_sha256)},
    ]
    metadata = _metadata(manifest)
    if metadata:
        assertions.append({"label": "c2pa.metadata", "data": metadata})
    return {"claim_generator_info": [agent], "title": plain_name(str(manifest["file"]["name"])),
            "format": media_format(manifest), "assertions": assertions}


def evidence_assertion(manifest: Mapping[str, Any], manifest_sha256: str) -> dict[str, Any]:
    """Who, when, how sure of the time, where, which matter, and the evidence record's hash."""
    gps = manifest.get("gps") or {}
    file = manifest["file"]
    return {
        "evidence_manifest_sha256": manifest_sha256,
        "format": manifest["format"],
        "device_id": manifest["device_id"], "device_seq": manifest["device_seq"],
        "officer_id": manifest.get("officer_id"), "unit": manifest.get("unit"),
        "recording_id": manifest["recording_id"], "seq": manifest["seq"],
        "boot_id": manifest.get("boot_id"),
        "start": manifest["start"], "end": manifest["end"], "clock": manifest["clock"],
        "location": {"start": gps.get("start"), "end": gps.get("end")},
        "matter": manifest.get("matter"),
        "file": {"name": file["name"], "plain_sha256": file["plain_sha256"],
                 "cipher_sha256": file["cipher_sha256"], "encrypted": file["encrypted"]},
        "flags": list(manifest.get("flags") or []),
    }


def _metadata(manifest: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fix = (manifest.get("gps") or {}).get("start")
    if fix:
        out.update({"exif:GPSLatitude": _xmp_coord(fix["lat_e7"], "NS"),
                    "exif:GPSLongitude": _xmp_coord(fix["lon_e7"], "EW"),
                    "exif:GPSTimeStamp": fix["utc"]})
        if fix.get("alt_mm") is not None:
            alt = int(fix["alt_mm"])
            out.update({"exif:GPSAltitudeRef": "0" if alt >= 0 else "1",
                        "exif:GPSAltitude": f"{abs(alt)}/1000"})
    if not out:
        return {}
    return {"@context": dict(_XMP_CONTEXT), "exif:DateTimeOriginal": manifest["start"]["utc"],
            **out}


def _xmp_coord(e7: int, hemispheres: str) -> str:
    """XMP GPSCoordinate ``DDD,MM.mmmmmmmH`` from 1e-7 degrees, exactly (integer arithmetic)."""
    hemi = hemispheres[0] if e7 >= 0 else hemispheres[1]
    e7 = abs(int(e7))
    degrees, rest = divmod(e7, 10_000_000)
    minutes_e7 = rest * 60  # minutes × 1e7
    return f"{degrees},{minutes_e7 // 10_000_000}.{minutes_e7 % 10_000_000:07d}{hemi}"
