"""Reading a recorder's output the way a back office would: manifests, decryption, ffprobe."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from agent.evidence.age import AgeDecryptor, Identity


def manifests(data_dir: Path) -> list[dict[str, Any]]:
    """Every signed manifest under ``data_dir``, in device sequence order."""
    out = []
    for env in (data_dir / "recordings").glob("*/*.manifest.json"):
        m = json.loads(env.read_bytes())["manifest"]
        m["_path"] = env
        out.append(m)
    return sorted(out, key=lambda m: m["device_seq"])


def media_path(manifest: dict[str, Any]) -> Path:
    """The segment file beside a manifest."""
    return manifest["_path"].with_name(manifest["file"]["name"])


def decrypt(manifest: dict[str, Any], identity_file: Path, out: Path) -> Path:
    """Decrypt a segment (tolerating a crash-truncated tail) into ``out``."""
    ident = Identity.parse(identity_file.read_text().strip().splitlines()[-1])
    dec = AgeDecryptor([ident], tolerant=True)
    data = media_path(manifest).read_bytes()
    out.write_bytes(dec.update(data) + dec.finalize())
    return out


def ffprobe(path: Path) -> dict[str, Any]:
    """ffprobe's JSON for streams and per-video-frame packets."""
    res = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", "-show_packets",
         "-show_entries", "packet=stream_index,pts_time,flags", str(path)],
        capture_output=True, text=True, timeout=60, check=True)
    return json.loads(res.stdout)


def video_packets(probe: dict[str, Any]) -> list[dict[str, Any]]:
    """Video packets of a probe, in order."""
    vidx = next(s["index"] for s in probe["streams"] if s["codec_type"] == "video")
    return [p for p in probe["packets"] if p["stream_index"] == vidx]


def playable_end_us(manifest: dict[str, Any], identity_file: Path, scratch: Path) -> int | None:
    """Monotonic µs just after the segment's last playable video frame (decrypted, ffprobed);
    ``None`` when nothing in it plays (cut before its first fragment was complete)."""
    out = decrypt(manifest, identity_file, scratch)
    if out.stat().st_size == 0:
        return None
    vp = video_packets(ffprobe(out))
    if not vp:
        return None
    fps = int((manifest["media"].get("video") or {}).get("fps") or 30)
    start = int(manifest["start"]["mono_us"])
    return start + round(float(vp[-1]["pts_time"]) * 1e6) + 1_000_000 // fps
