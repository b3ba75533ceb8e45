"""What the MP4 of every segment says about itself, read the way independent parsers read it.

One real recording on simulated hardware (libx264 camera, AAC microphone, NMEA GPS on a pty),
started after a full pre-event buffer; every segment is decrypted and examined: the sample
description against the parameter sets the slices use, decoding from the header alone, the
audio start against the manifest, and the pre-roll's GPS track.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import pytest

from agent.recording.aac import AacEncoder
from agent.recording.packets import MediaPacket
from agent.recording.segment import SegmentWriter
from agent.testing import running_agent, small_config, wait_for
from hw.audio import AudioFormat
from hw.camera import VideoFormat
from hw.errors import RecorderError
from tests.recording.evidence_tools import decrypt, manifests

_NAL_SPS, _NAL_PPS = 7, 8


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Standby until the ring holds 3 s with GPS fixes in it, start, two rolls, stop."""
    for tool in ("ffmpeg", "ffprobe"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    root = tmp_path_factory.mktemp("media")
    data_dir = root / "data"
    cfg = small_config(gps={"source": "serial"})
    with running_agent(cfg, data_dir) as agent:
        wait_for(lambda: agent.time.last_fix is not None and agent.time.last_fix.has_position)
        first_fix = time.monotonic()
        wait_for(lambda: agent.recorder.preroll.span_s >= 3.0
                 and time.monotonic() - first_fix >= 3.0)
        start_utc = time.time()
        agent.controller.call("start")
        wait_for(lambda: len(agent.recorder.sealed) >= 2, timeout=30)
        agent.controller.call("stop")
        wait_for(lambda: agent.recorder.state == "standby", timeout=10)
    ms = manifests(data_dir)
    ident = data_dir / "sim-agency.key"
    files = [decrypt(m, ident, root / f"{m['seq']}.mp4") for m in ms]
    return {"manifests": ms, "files": files, "start_utc": start_utc, "root": root}


# --- a header-only reader: ISO BMFF boxes down to the avcC record ------------------------------
def _boxes(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes in ``buf[start:end]``."""
    end = len(buf) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, pos)
        head = 8
        if size == 1:
            size, head = struct.unpack_from(">Q", buf, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        assert size >= head, f"malformed box {kind!r} at {pos}"
        yield kind, pos + head, pos + size
        pos += size


def _child(buf: bytes, parent: tuple[int, int], kind: bytes) -> tuple[int, int]:
    found = [(s, e) for k, s, e in _boxes(buf, *parent) if k == kind]
    assert found, f"no {kind!r} box"
    return found[0]


def avcc_record(mp4: bytes) -> bytes:
    """The avcC payload of the file's video track, found without any media library."""
    moov = _child(mp4, (0, len(mp4)), b"moov")
    for kind, s, e in _boxes(mp4, *moov):
        if kind != b"trak":
            continue
        mdia = _child(mp4, (s, e), b"mdia")
        hs, _ = _child(mp4, mdia, b"hdlr")
        if mp4[hs + 8 : hs + 12] != b"vide":
            continue
        stbl = _child(mp4, _child(mp4, _child(mp4, mdia, b"minf"), b"stbl"), b"stsd")
        entry_start = stbl[0] + 8  # full box header + entry_count
        (_, es, ee), *_ = list(_boxes(mp4, entry_start, stbl[1]))
        s_avcc, e_avcc = _child(mp4, (es + 78, ee), b"avcC")  # after the VisualSampleEntry
        return mp4[s_avcc:e_avcc]
    raise AssertionError("no video track")


def avcc_parameter_sets(record: bytes) -> tuple[list[bytes], list[bytes]]:
    """SPS and PPS listed in an avcC record (ISO/IEC 14496-15 §5.3.3.1)."""
    assert record[0] == 1, "avcC configurationVersion must be 1"
    pos, sps, pps = 6, [], []
    for _ in range(record[5] & 0x1F):
        (n,) = struct.unpack_from(">H", record, pos)
        sps.append(record[pos + 2 : pos + 2 + n])
        pos += 2 + n
    count = record[pos]
    pos += 1
    for _ in range(count):
        (n,) = struct.unpack_from(">H", record, pos)
        pps.append(record[pos + 2 : pos + 2 + n])
        pos += 2 + n
    return sps, pps


def first_sample_nal_units(path: Path) -> list[bytes]:
    """NAL units of the first video sample, as stored (4-byte lengths)."""
    with av.open(str(path)) as c:
        packet = next(p for p in c.demux(c.streams.video[0]) if p.size)
        data = bytes(packet)
    units, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        units.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return units


def _stream(path: Path, select: str, fields: str, *args: str) -> dict[str, Any]:
    """ffprobe's view of one stream: the named fields."""
    out = subprocess.run(["ffprobe", "-v", "error", *args, "-select_streams", select,
                          "-show_entries", f"stream={fields}", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    streams: list[dict[str, Any]] = json.loads(out)["streams"]
    assert len(streams) == 1, out
    return streams[0]


# --- item: the sample description describes the video it holds ---------------------------------
def test_avcc_holds_the_parameter_sets_the_slices_use(recording: dict[str, Any]) -> None:
    """In every segment the avcC's SPS/PPS are byte-identical to the in-band ones, so its
    profile is the camera's Constrained Baseline (66, constraint_set1), not an encoder's High."""
    for path in recording["files"]:
        sps, pps = avcc_parameter_sets(avcc_record(path.read_bytes()))
        inband = first_sample_nal_units(path)
        assert sps == [u for u in inband if u[0] & 0x1F == _NAL_SPS], path.name
        assert pps == [u for u in inband if u[0] & 0x1F == _NAL_PPS], path.name
        record = avcc_record(path.read_bytes())
        assert (record[1], record[3]) == (sps[0][1], sps[0][3]), "avcC profile/level ≠ its SPS"
        assert record[1] == 66 and record[2] & 0x40, "Constrained Baseline expected"


def test_audio_header_is_the_encoders_own_config(recording: dict[str, Any]) -> None:
    """The esds AudioSpecificConfig is the one the process-wide AAC encoder produced."""
    for m, path in zip(recording["manifests"], recording["files"], strict=True):
        audio = m["media"]["audio"]
        expected = AacEncoder(AudioFormat(sample_rate=audio["sample_rate"],
                                          channels=audio["channels"])).extradata
        with av.open(str(path)) as c:
            assert bytes(c.streams.audio[0].codec_context.extradata or b"") == expected


def test_header_alone_decodes_every_segment(recording: dict[str, Any], tmp_path: Path) -> None:
    """With in-band SPS/PPS removed, every segment decodes from its header with zero errors,
    every frame, and ffprobe reports the true profile."""
    for m, path in zip(recording["manifests"], recording["files"], strict=True):
        stripped = tmp_path / f"stripped-{path.name}"
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-c:v", "copy",
                        "-bsf:v", "filter_units=remove_types=7|8", "-f", "mp4", str(stripped)],
                       check=True, capture_output=True, timeout=60)
        assert not [u for u in first_sample_nal_units(stripped)
                    if u[0] & 0x1F in (_NAL_SPS, _NAL_PPS)], "the strip did not happen"
        decoded = subprocess.run(["ffmpeg", "-v", "error", "-i", str(stripped), "-f", "null", "-"],
                                 capture_output=True, text=True, check=False, timeout=60)
        assert (decoded.returncode, decoded.stderr) == (0, ""), f"{path.name}: {decoded.stderr}"
        probe = _stream(stripped, "v", "profile,nb_read_frames", "-count_frames")
        assert probe["profile"] == "Constrained Baseline"
        assert int(probe["nb_read_frames"]) == m["media"]["frames"]


def test_first_keyframe_without_parameter_sets_is_refused() -> None:
    """A keyframe without SPS/PPS cannot open a segment (its header could describe nothing)."""
    writer = SegmentWriter(_NullSink(), video=VideoFormat(width=320, height=240, fps=30,
                                                          bitrate=400_000, profile="baseline",
                                                          gop=30), audio=None)
    idr_only = b"\x00\x00\x00\x01\x65\x88\x84\x00\x33"
    with pytest.raises(RecorderError, match="SPS/PPS"):
        writer.write(MediaPacket("video", idr_only, 0, 33_333, keyframe=True, index=0))
    assert not writer.opened


class _NullSink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


def annexb_video(path: Path) -> list[tuple[bytes, bool]]:
    """The video access units of a segment as the camera delivers them (Annex-B)."""
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        bsf = av.BitStreamFilterContext("h264_mp4toannexb", vs)
        out = [(bytes(p), bool(p.is_keyframe)) for pk in c.demux(vs) for p in bsf.filter(pk)]
        return out + [(bytes(p), bool(p.is_keyframe)) for p in bsf.filter(None)]


def test_silent_microphone_does_not_hold_video_back(recording: dict[str, Any]) -> None:
    """With an audio track but no audio packets, each GOP still reaches the sink as soon as
    it is complete (within the muxer's 1 s interleave limit), not ~10 s later."""
    units = annexb_video(recording["files"][1])
    sink = _NullSink()
    fmt = VideoFormat(width=320, height=240, fps=30, bitrate=400_000, profile="baseline", gop=30)
    writer = SegmentWriter(sink, video=fmt, audio=AudioFormat(sample_rate=48_000, channels=1))
    frame_us = 1_000_000 // 30
    for i in range(6 * 30):  # six GOPs of video, no audio at all
        data, key = units[i % len(units)]
        writer.write(MediaPacket("video", data, 1_000_000 + i * frame_us, frame_us, key, i))
    fragments = bytes(sink.data).count(b"moof")
    writer.close()
    assert fragments >= 4, f"only {fragments} of 5 complete GOPs reached the sink"


def test_a_clock_that_steps_back_drops_packets_instead_of_ending_the_recording(
        recording: dict[str, Any], tmp_path: Path) -> None:
    """A frame or an audio packet stamped at or before the previous one of its stream (a
    camera or sound card clock that stepped back) cannot go into an MP4 timeline: it is
    dropped and counted, and the segment goes on -- the muxer would otherwise refuse it and
    the recorder would fault, ending the officer's recording. ffprobe reads the result."""
    units = annexb_video(recording["files"][1])
    sink = _NullSink()
    fmt = VideoFormat(width=320, height=240, fps=30, bitrate=400_000, profile="baseline", gop=30)
    audio = AudioFormat(sample_rate=48_000, channels=1)
    writer = SegmentWriter(sink, video=fmt, audio=audio)
    frame_us, aac_us = 1_000_000 // 30, 1024 * 1_000_000 // 48_000
    aac = b"\x21\x00\x49\x90\x02\x19\x00\x23\x80"  # a silent AAC-LC frame
    t_audio, n_audio = 1_000_000, 0
    for i in range(60):
        data, key = units[i % len(units)]
        pts = 1_000_000 + i * frame_us
        if i == 40:
            pts -= 10 * frame_us  # the camera's clock stepped back by ten frames
        writer.write(MediaPacket("video", data, pts, frame_us, key, i))
        while t_audio < 1_000_000 + (i + 1) * frame_us:
            writer.write(MediaPacket("audio", aac, t_audio, aac_us))
            n_audio += 1
            if n_audio == 30:  # the sound card's clock stepped back by three packets
                writer.write(MediaPacket("audio", aac, t_audio - 3 * aac_us, aac_us))
            t_audio += aac_us
    stats = writer.close()
    assert stats.out_of_order == 2 and stats.frames == 59 and stats.missing_frames == 1
    path = tmp_path / "stepped.mp4"
    path.write_bytes(bytes(sink.data))
    frames = _stream(path, "v:0", "nb_read_packets", "-count_packets")
    assert int(frames["nb_read_packets"]) == 59


# --- item: the audio/video offset is in the file ------------------------------------------------
def test_audio_starts_at_the_offset_the_manifest_records(recording: dict[str, Any]) -> None:
    """ffprobe's first audio timestamp equals the manifest's audio−video start offset (to one
    48 kHz sample) in every segment; video starts at 0; the stream lasts the manifest's time."""
    offsets = []
    for m, path in zip(recording["manifests"], recording["files"], strict=True):
        media = m["media"]
        expected_us = media["audio"]["first_pts_us"] - media["video"]["first_pts_us"]
        audio = _stream(path, "a", "start_pts,time_base")
        num, den = map(int, audio["time_base"].split("/"))
        got_us = int(audio["start_pts"]) * num * 1_000_000 / den
        assert abs(got_us - expected_us) <= 1_000_000 / media["audio"]["sample_rate"], path.name
        video = _stream(path, "v", "start_pts,duration")
        assert int(video["start_pts"]) == 0
        v_us = float(video["duration"]) * 1e6
        assert abs(v_us - media["duration_us"]) <= 1_000_000 / media["video"]["fps"], path.name
        offsets.append(expected_us)
    assert max(offsets) > 1_000_000 / 48_000, "the bench needs a segment whose audio starts late"


# --- item: the pre-roll carries its GPS fixes ---------------------------------------------------
def _utc(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_preroll_segment_carries_the_fixes_of_its_span(recording: dict[str, Any]) -> None:
    """The first segment (pre-roll, starting ~3 s before the press) has a GPS track with fixes
    from before the press, all inside the segment's time span."""
    first = recording["manifests"][0]
    assert "preroll" in first["flags"]
    gps = first["gps"]
    rows = gps["track"]
    assert len(rows) >= 2, gps
    start, end = _utc(first["start"]["utc"]), _utc(first["end"]["utc"])
    times = [_utc(r[0]) for r in rows]  # rows: [utc, lat_e7, lon_e7, alt_mm]
    assert times[0] < recording["start_utc"], "no fix from the pre-event span"
    # a fix is stamped by the receiver before it reaches us: allow its latency (≤ 1 s)
    assert all(start - 1.0 <= t <= end for t in times), (start, end, times)
    assert gps["start"] is not None and _utc(gps["start"]["utc"]) <= times[0]
