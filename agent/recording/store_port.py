"""Adapter between the recorder's segment lifecycle and the evidence store.

The recorder knows media (packets, frame counts, monotonic times); the evidence store knows
files, hashes, signatures and the log. This module fills the manifest's typed parts from the
things around the recorder -- the clock (monotonic → UTC and its source), the GPS track, the
enforcement matter, the officer -- so neither side needs to know the other's details.

Thread model: called from the controller thread (the store has its own lock), except the
functions :meth:`StorePort.seal_later` returns and :meth:`StorePort.sync`, which the segment
worker runs: they touch only the segment's sink and the store, never the context.

The evidence path ends where the store's seal returns: a failure there is the recorder's
(it faults). Announcing the sealed segment (``on_sealed``: outbox, published checkpoint,
offload) is a side channel (:mod:`agent.side_channel`): its failure is logged and counted in
:attr:`StorePort.announce_sealed`, never raised into the seal. Likewise a context reading
that fails (a bug in the GPS track, the matter or the clock code) costs the manifest that
part, flagged ``<part>_unavailable`` and counted in :attr:`StorePort.context_failures`,
never the segment: raised at a roll it would leave the segment unsealed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from agent.evidence.manifest import ClockInfo, GpsSummary, MediaInfo, SegmentInfo, SignedManifest, Timestamp
from agent.evidence.store import EvidenceStore, OpenSegment
from agent.evidence.utc import iso_from_epoch_us
from agent.recording.segment import SegmentStats
from agent.side_channel import SideChannel
from hw.audio import AudioFormat
from hw.camera import VideoFormat
from hw.still import Still

__all__ = ["ManifestContext", "StorePort"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass
class ManifestContext:
    """Callables that describe the world at segment open/seal time."""

    utc_for_mono_us: Callable[[int], str]
    clock_info: Callable[[], ClockInfo]
    gps_summary: Callable[[int, int], GpsSummary] = lambda start, end: GpsSummary()
    segment_opened: Callable[[int], None] = lambda start_mono_us: None
    matter: Callable[[], Mapping[str, Any] | None] = lambda: None
    officer_id: Callable[[], str] = lambda: ""
    unit: str = ""
    boot_id: str = ""


class StorePort:
    """The recorder's :class:`agent.recording.recorder.SegmentPort`, backed by an :class:`EvidenceStore`."""

    def __init__(
        self,
        store: EvidenceStore,
        ctx: ManifestContext,
        *,
        video: VideoFormat | None,
        audio: AudioFormat | None,
        audio_bitrate: int,
        on_sealed: Callable[[SignedManifest], None] = lambda m: None,
    ) -> None:
        self.store = store
        self.ctx = ctx
        self._video = video
        self._audio = audio
        self._audio_bitrate = audio_bitrate
        self.announce_sealed: SideChannel[[SignedManifest]] = SideChannel(
            "announcing a sealed segment (on_sealed)", on_sealed)
        self.context_failures = 0

    @property
    def side_channel_failures(self) -> int:
        """Failures outside the evidence path around this port's seals (announcement, context
        readings, the store's after-seal hook), each logged where it happened."""
        hook = self.store.after_seal
        return (self.announce_sealed.failures + self.context_failures
                + (hook.failures if hook is not None else 0))

    def _read(self, part: str, read: Callable[[], _T], fallback: _T, flags: list[str]) -> _T:
        """One reading of the world for a manifest; on failure the manifest goes without it."""
        try:
            return read()
        except Exception as exc:  # the segment matters more than this part of its manifest
            self.context_failures += 1
            log.error("segment manifest without its %s (%s: %s)", part, type(exc).__name__, exc,
                      exc_info=self.context_failures == 1)
            if f"{part}_unavailable" not in flags:
                flags.append(f"{part}_unavailable")
            return fallback

    def _start(self, mono_us: int, flags: list[str]) -> tuple[Timestamp, ClockInfo]:
        """The UTC of ``mono_us`` and where it came from (the system clock if that failed)."""
        utc = self._read("clock", lambda: self.ctx.utc_for_mono_us(mono_us), None, flags)
        clock = self._read("clock", self.ctx.clock_info, _NO_CLOCK, flags)
        if utc is None:
            return Timestamp(_system_utc(mono_us), mono_us), _NO_CLOCK
        return Timestamp(utc, mono_us), clock

    def _opened(self, mono_us: int) -> None:
        self._read("track", lambda: self.ctx.segment_opened(mono_us), None, [])

    def open_segment(
        self, *, recording_id: str, seq: int, start_mono_us: int, flags: list[str]
    ) -> OpenSegment:
        """Open the file and journal of one segment."""
        marks = [f for f in flags if f != "preroll"]
        start, clock = self._start(start_mono_us, marks)
        info = SegmentInfo(
            recording_id=recording_id,
            seq=seq,
            start=start,
            clock=clock,
            officer_id=self._read("officer", self.ctx.officer_id, "", marks) or None,
            unit=self.ctx.unit or None,
            boot_id=self.ctx.boot_id or None,
            preroll="preroll" in flags,
            flags=tuple(marks),
        )
        handle = self.store.open_segment(info)
        self._opened(start_mono_us)
        return handle

    def seal_still(self, still: Still, *, recording_id: str, flags: list[str],
                   bookmarks: list[dict[str, Any]]) -> dict[str, Any]:
        """Seal one still picture as a one-picture recording (stills profile)."""
        marks = ["still"]
        start, clock = self._start(still.mono_us, marks)
        info = SegmentInfo(
            recording_id=recording_id, seq=0, start=start, clock=clock,
            officer_id=self._read("officer", self.ctx.officer_id, "", marks) or None,
            unit=self.ctx.unit or None, boot_id=self.ctx.boot_id or None,
            flags=tuple(marks), extension="jpg",
        )
        handle = self.store.open_segment(info)
        self._opened(still.mono_us)
        try:
            handle.sink.write(still.jpeg)
        except OSError:
            self.store.abandon(handle)
            raise
        all_flags = list(flags)
        matter = self._read("matter", self.ctx.matter, None, all_flags)
        gps = self._read("gps", lambda: self.ctx.gps_summary(still.mono_us, still.mono_us),
                         GpsSummary(), all_flags)
        signed = self.store.seal(
            handle, end=info.start,
            media=MediaInfo(container="jpeg", frames=1, duration_us=0,
                            video={"codec": "mjpeg", "width": still.width, "height": still.height}),
            gps=gps, bookmarks=bookmarks,
            matter=matter, flags=[*all_flags, *([] if matter else ["uncategorised"])],
            clock=clock)
        return self.sealed(signed)

    def sync(self, handle: OpenSegment) -> None:
        """fsync what the sink has written."""
        handle.sink.sync()

    def abandon(self, handle: OpenSegment) -> None:
        """Storage failed under this segment: keep its journal for :meth:`EvidenceStore.recover`."""
        self.store.abandon(handle)

    def seal(
        self,
        handle: OpenSegment,
        *,
        stats: SegmentStats,
        end_mono_us: int,
        flags: list[str],
        bookmarks: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Sign and log the segment; returns the manifest."""
        finish = self.seal_later(handle, end_mono_us=end_mono_us, flags=flags,
                                 bookmarks=bookmarks)
        return self.sealed(finish(stats, []))

    def seal_later(
        self,
        handle: OpenSegment,
        *,
        end_mono_us: int,
        flags: list[str],
        bookmarks: list[dict[str, Any]],
    ) -> Callable[[SegmentStats, list[str]], SignedManifest]:
        """Read the world now (matter, GPS track, clock: controller thread); the returned
        function seals with the final stats on any thread; pass its result to :meth:`sealed`."""
        start_us = handle.info.start.mono_us
        all_flags = list(flags)
        matter = self._read("matter", self.ctx.matter, None, all_flags)
        if matter is None:
            all_flags.append("uncategorised")
        end, clock = self._start(end_mono_us, all_flags)
        gps = self._read("gps", lambda: self.ctx.gps_summary(start_us, end_mono_us),
                         GpsSummary(), all_flags)
        marks = list(bookmarks)

        def finish(stats: SegmentStats, extra_flags: list[str]) -> SignedManifest:
            return self.store.seal(handle, end=end, media=self._media(stats), gps=gps,
                                   bookmarks=marks, matter=matter,
                                   flags=[*all_flags, *extra_flags], clock=clock)

        return finish

    def sealed(self, signed: SignedManifest) -> dict[str, Any]:
        """Hand a sealed segment on (outbox, offload; controller thread); its manifest.

        Never raises: the segment is evidence already, whatever its announcement does."""
        self.announce_sealed(signed)
        return signed.manifest

    def _media(self, stats: SegmentStats) -> MediaInfo:
        video = None
        if self._video is not None:
            v = self._video
            video = {
                "codec": v.codec, "profile": v.profile, "width": v.width, "height": v.height,
                "fps": v.fps, "bitrate": v.bitrate, "gop": v.gop,
                "first_pts_us": stats.first_pts_us, "last_pts_us": stats.last_pts_us,
                "first_index": stats.first_index, "last_index": stats.last_index,
                "missing_frames": stats.missing_frames,
            }
        audio = None
        if self._audio is not None:
            audio = {
                "codec": "aac", "sample_rate": self._audio.sample_rate,
                "channels": self._audio.channels, "bitrate": self._audio_bitrate,
                "packets": stats.audio_packets, "first_pts_us": stats.audio_first_pts_us,
                "end_us": stats.audio_end_us,
            }
        return MediaInfo(video=video, audio=audio, frames=stats.frames if video else None,
                         duration_us=stats.duration_us if video else _audio_duration(stats))


def _audio_duration(stats: SegmentStats) -> int | None:
    if stats.audio_first_pts_us is None or stats.audio_end_us is None:
        return None
    return stats.audio_end_us - stats.audio_first_pts_us


_NO_CLOCK = ClockInfo("none", None)  # nothing bounds the error of this UTC


def _system_utc(mono_us: int) -> str:
    """UTC of a monotonic instant by the system clock alone (the clock code failed)."""
    offset_us = time.time_ns() // 1000 - time.monotonic_ns() // 1000
    return iso_from_epoch_us(mono_us + offset_us)
