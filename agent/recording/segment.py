"""One evidence segment: encoded packets muxed into fragmented MP4.

The muxer is PyAV (the same libavformat picamera2's ``PyavOutput`` uses) writing into a
binary sink -- the evidence sink that hashes, encrypts and appends -- never into a plain file.
``frag_keyframe+empty_moov+default_base_moof`` with ``flush_packets`` makes every GOP a
self-contained fragment that is handed to the sink as soon as it is complete, so a crash
loses at most the fragment being built and the file stays playable when truncated.

Each segment's media timeline starts at 0 at its first keyframe; its position in the
recording and in real time is in the manifest (``first_pts_us`` on ``CLOCK_MONOTONIC`` plus
the monotonic↔UTC pair), which maps media time to UTC exactly.

What the file says about itself (docs/MEDIA.md):

* **Sample description.** The video track is a mux-only stream: no encoder is opened, so the
  ``avcC`` record is built from the SPS/PPS of the segment's first keyframe (libavformat's
  ``extract_extradata``), the very parameter sets the slices use. An encoder context would
  write its *own* global header over them (libx264 says High/CABAC while the camera sends
  Constrained Baseline/CAVLC), and a decoder that configures itself from the header fails.
* **Audio start.** Audio is muxed at its true offset from the first frame (up to one AAC frame,
  ~21 ms, later). The moov is written before any sample (``empty_moov``), so it cannot carry
  an edit list; ``frag_discont`` with ``use_editlist=1`` makes the first fragment's ``tfdt``
  carry the offset instead (to the audio sample). ``delay_moov`` would give a real edit list
  but holds the moov -- and every fragment -- back until *each* track has a sample: a silent
  microphone would keep the whole segment in memory and lose it in a crash.
* **No total duration.** ``mehd``/``mvhd`` durations and a global ``sidx`` sit before the
  media and are only known at the end; FFmpeg writes them by seeking back (``global_sidx``,
  ``faststart``), which an append-only encrypted sink cannot allow. The manifest holds the
  exact duration; players that take it from the ``mfra`` index show the start of the last
  fragment instead.

Not thread-safe: a writer is owned by the segment worker.

:class:`SegmentPort` is how the recorder reaches the evidence store (implemented by
:mod:`agent.recording.store_port`); it lives here, beside the stats it carries, so neither side
imports the other.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, BinaryIO, Protocol

import av

from agent.recording.packets import MediaPacket, h264_parameter_sets
from hw.audio import AudioFormat
from hw.camera import VideoFormat
from hw.errors import RecorderError, StorageError, StorageWriteError

__all__ = ["SegmentHandle", "SegmentPort", "SegmentStats", "SegmentWriter"]

log = logging.getLogger(__name__)

_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof+frag_discont"
# use_editlist=1 selects the frag_discont branch that keeps each track's first timestamp
# (tfdt = its offset from the first frame) instead of shifting every track to start at 0.
# max_interleave_delta: libavformat holds packets until every stream has one, by default for
# up to 10 s; a silent microphone would keep ~10 s of video out of the sink (lost in a
# crash). Audio trails video by tens of ms, so 1 s never reorders a working recording.
_MUX_OPTIONS = {"movflags": _MOVFLAGS, "flush_packets": "1", "use_editlist": "1",
                "max_interleave_delta": "1000000"}
_VIDEO_TB = Fraction(1, 90_000)
# Mux-only streams (add_mux_stream) whose avcC libavformat builds from the first packet's
# SPS/PPS arrived in PyAV 18; an older PyAV would fall back to an encoder's header.
_PYAV_MIN = (18, 1)


def _pyav_version() -> tuple[int, ...]:
    return tuple(int(p) for p in av.__version__.split(".")[:2] if p.isdigit())


@dataclass(slots=True)
class SegmentStats:
    """What was muxed; goes into the manifest's ``media`` part."""

    frames: int = 0
    audio_packets: int = 0
    first_pts_us: int | None = None
    last_pts_us: int | None = None
    last_duration_us: int = 0
    audio_first_pts_us: int | None = None
    audio_end_us: int | None = None
    skipped_before_keyframe: int = 0
    audio_dropped: int = 0
    # packets whose time did not advance within their stream (a camera or sound card clock
    # that stepped back): dropped, because an MP4 timeline cannot go back and the muxer would
    # refuse the packet -- a dropped frame shows in missing_frames, as any lost frame does
    out_of_order: int = 0
    first_index: int | None = None  # the camera's frame counter of the first and last frame
    last_index: int | None = None

    @property
    def missing_frames(self) -> int:
        """Frames the camera counted but never delivered within this segment (from the first
        and last index and the count: constant memory however long the segment)."""
        if self.first_index is None or self.last_index is None or self.frames < 2:
            return 0
        return self.last_index - self.first_index + 1 - self.frames

    @property
    def duration_us(self) -> int:
        """Video duration: first frame to the end of the last frame."""
        if self.first_pts_us is None or self.last_pts_us is None:
            return 0
        return self.last_pts_us - self.first_pts_us + self.last_duration_us

    @property
    def end_pts_us(self) -> int | None:
        """Monotonic time just after the last frame (where the next segment must start)."""
        if self.last_pts_us is None:
            return None
        return self.last_pts_us + self.last_duration_us


class SegmentHandle(Protocol):
    """What the evidence store hands back for an open segment."""

    @property
    def sink(self) -> BinaryIO:
        """Where the muxer writes (hash → encrypt → append)."""
        ...


class SegmentPort(Protocol):
    """The recorder's view of the evidence store (see :mod:`agent.recording.store_port`)."""

    def open_segment(self, *, recording_id: str, seq: int, start_mono_us: int, flags: list[str]) -> Any:
        """Create the segment's file and crash journal; return a handle with ``.sink``."""
        ...

    def sync(self, handle: Any) -> None:
        """Make what was written so far durable (fsync)."""
        ...

    def seal(self, handle: Any, *, stats: SegmentStats, end_mono_us: int, flags: list[str],
             bookmarks: list[dict[str, Any]]) -> dict[str, Any]:
        """Close the sink, sign the manifest, append the log; return the manifest envelope."""
        ...

    def seal_later(self, handle: Any, *, end_mono_us: int, flags: list[str],
                   bookmarks: list[dict[str, Any]]) -> Callable[[SegmentStats, list[str]], Any]:
        """Gather now (controller thread) what the manifest needs from the world; the returned
        function does the file work -- close, fsync, sign, log -- with the final stats and
        extra flags, on the segment worker; hand its result to :meth:`sealed`."""
        ...

    def sealed(self, result: Any) -> dict[str, Any]:
        """Announce a seal's result (controller thread); returns the manifest. Must not
        raise: the segment is evidence already, and what hears about it is a side channel
        (:mod:`agent.side_channel`) that logs its own failures."""
        ...

    def abandon(self, handle: Any) -> None:
        """Give up a segment whose storage failed; its crash journal seals it later."""
        ...


def _muxer_error(exc: av.error.FFmpegError) -> Exception:
    """libav reports a failing sink as its own error type: the error with its real meaning."""
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, StorageError):
        return cause
    if isinstance(exc, av.error.PyAVCallbackError) or isinstance(cause, OSError):
        return StorageWriteError(errno.EIO, f"segment sink failed under the muxer: {exc}")
    return RecorderError(f"muxer: {exc}")


@contextmanager
def _muxer_errors() -> Iterator[None]:
    """:func:`_muxer_error` around opening and closing the container."""
    try:
        yield
    except StorageError:
        raise
    except av.error.FFmpegError as exc:
        raise _muxer_error(exc) from exc


class SegmentWriter:
    """Mux one segment's packets into ``sink``."""

    def __init__(
        self,
        sink: BinaryIO,
        *,
        video: VideoFormat | None,
        audio: AudioFormat | None,
        audio_extradata: bytes = b"",
        audio_bitrate: int = 96_000,
    ) -> None:
        self._sink = sink
        self._video_fmt = video
        self._audio_fmt = audio
        self._audio_extradata = audio_extradata
        self._audio_bitrate = audio_bitrate
        self._container: Any = None
        self._vstream: Any = None
        self._astream: Any = None
        self._atb, self._arate = Fraction(1, 1), 1
        self._origin_us: int | None = None
        self._held_audio: list[MediaPacket] = []
        self.stats = SegmentStats()

    def _open(self, first: MediaPacket) -> None:
        if self._video_fmt is not None and _pyav_version() < _PYAV_MIN:
            raise RecorderError(f"PyAV {av.__version__} cannot mux H.264 without an encoder's "
                                f"header; segments need PyAV >= {'.'.join(map(str, _PYAV_MIN))}")
        if self._video_fmt is not None and h264_parameter_sets(first.data) is None:
            # Without SPS/PPS the header cannot describe the video and no decoder can start.
            raise RecorderError("the segment's first keyframe carries no SPS/PPS "
                                "(the camera must repeat parameter sets on every IDR)")
        with _muxer_errors():
            self._container = av.open(self._sink, mode="w", format="mp4",
                                      options=dict(_MUX_OPTIONS))
        if self._video_fmt is not None:
            fmt = self._video_fmt
            # Mux-only: the sample description comes from the first keyframe's own SPS/PPS
            # (PyAV runs extract_extradata on it before writing the header), never from an
            # encoder's global header.
            vs = self._container.add_mux_stream("h264", rate=fmt.fps, width=fmt.width,
                                                height=fmt.height)
            vs.time_base = _VIDEO_TB
            self._vstream = vs
        if self._audio_fmt is not None:
            a = self._audio_fmt
            ast = self._container.add_stream("aac", rate=a.sample_rate)
            ast.codec_context.layout = "mono" if a.channels == 1 else "stereo"
            ast.codec_context.bit_rate = self._audio_bitrate
            if self._audio_extradata:
                ast.codec_context.extradata = self._audio_extradata
            ast.time_base = Fraction(1, a.sample_rate)
            self._astream = ast
            # PyAV builds a new Fraction on every read of time_base: read it once
            self._atb, self._arate = Fraction(1, a.sample_rate), a.sample_rate
        self._origin_us = first.pts_us

    def write(self, packet: MediaPacket) -> None:
        """Mux one packet (video must begin with a keyframe; earlier frames are skipped).

        The error translation is inline rather than :func:`_muxer_errors`: a generator
        context manager per packet cost about as much as the muxing of an audio packet."""
        try:
            if packet.kind == "video":
                self._write_video(packet)
            else:
                self._write_audio(packet)
        except StorageError:
            raise
        except av.error.FFmpegError as exc:
            raise _muxer_error(exc) from exc

    def _write_video(self, packet: MediaPacket) -> None:
        if self._vstream is None and self._container is not None:
            return
        if self._container is None:
            if not packet.keyframe:
                self.stats.skipped_before_keyframe += 1
                return
            self._open(packet)
            held, self._held_audio = self._held_audio, []
            for a in held:
                self._write_audio(a)
        assert self._origin_us is not None
        last = self.stats.last_pts_us
        if last is not None and packet.pts_us <= last:
            self._out_of_order(packet, last)
            return
        p = av.Packet(packet.data)
        p.stream = self._vstream
        p.time_base = _VIDEO_TB
        p.pts = p.dts = (packet.pts_us - self._origin_us) * 9 // 100
        p.duration = packet.duration_us * 9 // 100
        p.is_keyframe = packet.keyframe
        self._container.mux(p)
        st = self.stats
        st.frames += 1
        if st.first_pts_us is None:
            st.first_pts_us = packet.pts_us
        st.last_pts_us = packet.pts_us
        st.last_duration_us = packet.duration_us
        if st.first_index is None:
            st.first_index = packet.index
        st.last_index = packet.index

    def _write_audio(self, packet: MediaPacket) -> None:
        if self._astream is None and self._container is not None:
            return
        if self._container is None:
            if self._video_fmt is not None:
                self._held_audio.append(packet)  # the segment opens on its first keyframe
                return
            self._open(packet)
        assert self._origin_us is not None
        if packet.pts_us < self._origin_us:
            self.stats.audio_dropped += 1  # before this segment; the router gives it to the last one
            return
        end = self.stats.audio_end_us
        if end is not None and packet.pts_us < end - packet.duration_us // 2:
            self._out_of_order(packet, end)  # overlaps what was muxed (AAC pts are rounded)
            return
        rate = self._arate
        p = av.Packet(packet.data)
        p.stream = self._astream
        p.time_base = self._atb
        p.pts = p.dts = (packet.pts_us - self._origin_us) * rate // 1_000_000
        p.duration = packet.duration_us * rate // 1_000_000
        self._container.mux(p)
        st = self.stats
        st.audio_packets += 1
        if st.audio_first_pts_us is None:
            st.audio_first_pts_us = packet.pts_us
        st.audio_end_us = packet.pts_us + packet.duration_us

    def _out_of_order(self, packet: MediaPacket, last_us: int) -> None:
        self.stats.out_of_order += 1
        if self.stats.out_of_order == 1:
            log.warning("%s packet at %d us does not follow the previous one (%d us): dropped, "
                        "and counted for this segment", packet.kind, packet.pts_us, last_us)

    @property
    def opened(self) -> bool:
        """True once the first keyframe (or, audio-only, the first packet) was muxed."""
        return self._container is not None

    def close(self) -> SegmentStats:
        """Write the last fragment and the trailer into the sink."""
        if self._container is not None:
            container, self._container = self._container, None
            with _muxer_errors():
                container.close()
        return self.stats
