"""Read the unit's evidence back: manifests, decrypted media, decoded timelines.

Everything the bench reports about picture and sound comes from here, i.e. from the files a
court would receive, not from what the unit says about itself. Each segment's MP4 timeline
starts at zero; its place in time is the manifest's ``first_pts_us`` (CLOCK_MONOTONIC µs) per
track, so every frame and every audio sample of a recording lands on one timeline.

Decrypted media go to a private temporary directory and are deleted as soon as they are
decoded: the bench keeps measurements, never plaintext evidence.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from agent.evidence.age import AgeDecryptor, Identity
from agent.evidence.manifest import parse_envelope

from .c2pa_column import segment_credential
from .unit import BenchError

__all__ = ["Recording", "SegmentMedia", "check_credential", "decode_segment", "load_recordings",
           "probe"]

_READ = 1 << 20
_BEEP_THRESHOLD = 0.5  # of the loudest sample: the beep's rising edge, well above room tone


@dataclass(slots=True)
class SegmentMedia:
    """One segment: its manifest and what decoding its media found."""

    manifest: dict[str, Any]
    media_path: Path
    video_pts_us: list[int] = field(default_factory=list)  # absolute CLOCK_MONOTONIC µs
    luma: list[float] = field(default_factory=list)  # mean Y of each frame, 0..255
    beeps_us: list[int] = field(default_factory=list)  # absolute onsets of loud audio
    probe: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    c2pa: tuple[str, str] | None = None  # the credential's (state, reason), once checked


@dataclass(slots=True)
class Recording:
    """The segments of one recording, in sequence order."""

    recording_id: str
    segments: list[SegmentMedia]

    @property
    def flags(self) -> set[str]:
        """Every flag any of its segments carries."""
        return {f for s in self.segments for f in s.manifest.get("flags", [])}


def load_recordings(data_dir: Path) -> list[Recording]:
    """Every recording under ``data_dir/recordings``, oldest first, from the signed manifests."""
    by_id: dict[str, list[SegmentMedia]] = {}
    for path in sorted((data_dir / "recordings").glob("*/*.manifest.json")):
        try:
            m = parse_envelope(path.read_bytes()).manifest
        except Exception as exc:  # a broken manifest is verify's finding, not the bench's crash
            raise BenchError(f"cannot read manifest {path}: {exc}") from exc
        media = path.parent / str(m.get("file", {}).get("name", ""))
        by_id.setdefault(str(m["recording_id"]), []).append(SegmentMedia(m, media))
    recs = [Recording(rid, sorted(segs, key=lambda s: int(s.manifest["seq"])))
            for rid, segs in by_id.items()]
    return sorted(recs, key=lambda r: int(r.segments[0].manifest["start"]["mono_us"]))


def _decrypt(src: Path, dest: Path, identities: list[Identity]) -> bool:
    """Decrypt ``src`` (tolerating a crash-truncated tail); True when the tail was cut."""
    dec = AgeDecryptor(identities, tolerant=True)
    with open(src, "rb") as f, open(dest, "wb") as out:
        while chunk := f.read(_READ):
            out.write(dec.update(chunk))
        out.write(dec.finalize())
    return dec.truncated


def probe(path: Path) -> dict[str, Any]:
    """ffprobe's view of the streams: codec, profile, size, frame rate, bitrates."""
    try:
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
            capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"ffprobe failed on a decrypted segment: {exc}") from exc
    doc: dict[str, Any] = json.loads(out)
    return doc


def decode_segment(seg: SegmentMedia, identities: list[Identity], *,
                   want_audio: bool = True, c2pa_anchors: bytes | None = None) -> None:
    """Decrypt, probe and decode one segment in place, and check its C2PA credential against
    the plaintext (:mod:`.credentials`); errors go to ``seg.error``."""
    with tempfile.TemporaryDirectory(prefix="bodycam-bench-") as tmp:
        plain = Path(tmp) / "segment.mp4"
        try:
            if seg.manifest.get("file", {}).get("encrypted", True):
                _decrypt(seg.media_path, plain, identities)
            else:
                plain.write_bytes(seg.media_path.read_bytes())
            seg.c2pa = check_credential(seg, plain, c2pa_anchors)
            seg.probe = probe(plain)
            _decode(seg, plain, want_audio=want_audio)
        except (OSError, av.FFmpegError, BenchError, ValueError) as exc:
            seg.error = f"{seg.media_path.name}: {exc}"


def check_credential(seg: SegmentMedia, plain: Path | None,
                     anchors: bytes | None) -> tuple[str, str]:
    """The segment's C2PA (state, reason); ``plain`` is its decrypted copy when there is one."""
    try:
        return segment_credential(seg.media_path, seg.manifest, plain, anchors)
    except OSError as exc:
        return "invalid", f"credential unreadable: {exc}"


def _decode(seg: SegmentMedia, plain: Path, *, want_audio: bool) -> None:
    media = seg.manifest.get("media", {})
    v0 = int(media.get("video", {}).get("first_pts_us", seg.manifest["start"]["mono_us"]))
    with av.open(str(plain)) as c:
        vs = c.streams.video[0]
        tb = vs.time_base
        if tb is None:
            raise BenchError("the video stream has no time base")
        base: int | None = None
        for frame in c.decode(vs):
            if frame.pts is None:
                continue
            pts = int(frame.pts * tb * 1_000_000)
            base = pts if base is None else base
            seg.video_pts_us.append(v0 + pts - base)
            seg.luma.append(_mean_luma(frame))
    a0 = media.get("audio", {}).get("first_pts_us")
    if want_audio and a0 is not None:
        seg.beeps_us = _beep_onsets(plain, int(a0))


def _mean_luma(frame: av.VideoFrame) -> float:
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(frame.height, plane.line_size)
    return float(rows[:, : frame.width].mean())


def _beep_onsets(plain: Path, a0_us: int) -> list[int]:
    """Absolute times of each beep's rising edge (sample-accurate)."""
    chunks: list[npt.NDArray[np.float32]] = []
    rate = 48_000
    with av.open(str(plain)) as c:
        if not c.streams.audio:
            return []
        st = c.streams.audio[0]
        rate = st.rate or rate
        for frame in c.decode(st):
            x = frame.to_ndarray().astype(np.float32)
            chunks.append(np.abs(x).max(axis=0) if x.ndim == 2 else np.abs(x))
    if not chunks:
        return []
    env = np.concatenate(chunks)
    peak = float(env.max())
    if peak < 0.05:  # silence: no beep in this segment
        return []
    loud = env >= _BEEP_THRESHOLD * peak
    rising = np.flatnonzero(loud[1:] & ~loud[:-1]) + 1
    if loud[0]:
        rising = np.concatenate(([0], rising))
    onsets: list[int] = []
    last = -10 * rate
    for i in rising.tolist():
        if i - last > rate // 5:  # a new beep, not another cycle of the same one
            onsets.append(a0_us + (i * 1_000_000) // rate)
        last = i
    return onsets
