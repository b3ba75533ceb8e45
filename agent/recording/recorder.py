"""The recorder state machine: pre-roll, gapless rolling segments, stop, fault.

States (:class:`RecorderState`): ``standby`` (buffering the pre-event ring) → ``recording`` →
``stopping`` (the audio tail catches up with the last frame) → ``standby``; any state →
``fault`` on a storage or camera failure, with the open segment sealed first.

Gapless rolling: a segment rolls at the first keyframe at or after ``segment_s``. That
keyframe opens the next segment at once, while the previous one stays open just long enough
for audio packets stamped before the boundary (audio arrives a few tens of ms after video) to
reach it; then it is sealed. Every video frame goes to exactly one segment and consecutive
segments meet exactly (the end of one is the first pts of the next) -- unless the port defers
an open (:class:`OpenDeferred`): then no segment is open until it accepts at a later
keyframe, and the media in between is not recorded, without a fault (the bench's lost-media
fault is such a port: :mod:`agent.recording.fault_ports`).

Threads (DESIGN.md §1): only the controller thread calls the recorder and changes its state;
it *decides* -- which segment a packet goes to, when to roll, seal or stop -- and hands the
file work (:mod:`agent.recording.file_work`) to the segment worker
(:mod:`agent.recording.segment_worker`): muxing, hashing, encryption, every fsync and the seal
run there, in the order decided, so a press gives its feedback at once and the pre-event
buffer is written (and fsynced) behind it while new frames keep being routed. An
:class:`RoutedSegment`'s ``writer`` is the worker's (the recorder reads only the ``routed_*``
times it keeps itself); outcomes (a sealed manifest, a storage failure) come back on the
controller thread through :meth:`Recorder.poll`, and events keep their order: a segment's
``segment_sealed`` before the ``recording_stopped`` or ``fault`` that followed it. Opening a
segment (journal, file) still happens on the controller thread, after the start feedback.

Only evidence can stop a recording: the ``on_event`` consumer (feedback, log, sync) is a side
channel (:mod:`agent.side_channel`) whose failures are logged and counted in
:attr:`Recorder.events`, and a port's announcement of a seal (:meth:`SegmentPort.sealed`)
that raises anyway is logged, never a fault: the segment is sealed. What the recorder keeps
for the life of the process is bounded: the count and the last manifest of what it sealed
(:class:`SealedTally`), never the list.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

from agent.recording.file_work import FileWork
from agent.recording.packets import MediaPacket
from agent.recording.preroll import PreRoll
from agent.recording.segment import SegmentPort, SegmentWriter
from agent.recording.segment_state import (
    OpenDeferred,
    RecorderState,
    RoutedSegment,
    SealedTally,
    prepare_seal,
)
from agent.recording.segment_worker import InlineWorker, Worker
from agent.side_channel import SideChannel
from hw.audio import AudioFormat
from hw.camera import VideoFormat
from hw.errors import EvidenceError, RecorderError, StorageError

__all__ = ["OpenDeferred", "Recorder", "RecorderState", "RoutedSegment", "SealedTally",
           "SegmentPort"]

log = logging.getLogger(__name__)

_AUDIO_TAIL_US = 600_000  # longest wait for audio to catch up before sealing anyway


class Recorder:
    """Owns the pre-event ring and the open segments of the current recording."""

    def __init__(
        self,
        *,
        port: SegmentPort,
        video: VideoFormat | None,
        audio: AudioFormat | None,
        audio_extradata: bytes = b"",
        audio_bitrate: int = 96_000,
        prerecord_s: float = 30.0,
        prerecord_audio: bool = True,
        segment_s: float = 60.0,
        on_event: Callable[[str, dict[str, Any]], None] = lambda kind, data: None,
        worker: Worker | None = None,
    ) -> None:
        self._port = port
        self._work = FileWork(worker or InlineWorker(), fault=self.fault)
        self._video = video
        self._audio = audio
        self._audio_extradata = audio_extradata
        self._audio_bitrate = audio_bitrate
        self._segment_us = int(segment_s * 1_000_000)
        self.events: SideChannel[[str, dict[str, Any]]] = SideChannel(
            "recorder event consumer (on_event)", on_event)
        self.preroll = PreRoll(prerecord_s, keep_audio=prerecord_audio, audio_only=video is None)
        self._anchor = "video" if video is not None else "audio"
        self.state = RecorderState.STANDBY
        self.fault_reason: str | None = None
        self.recording_id: str | None = None
        self._seq = 0
        self._current: RoutedSegment | None = None
        self._closing: RoutedSegment | None = None
        self._stop_at_us: int | None = None
        self._latest_us = 0
        self._pending_flags: list[str] = []
        self._stop_reason = "stop"
        self.sealed = SealedTally()
        self.last_video_index = -1
        self.frames_gap = 0
        # What a start calls, after its feedback, for the audio the encoder holds back in
        # standby (agent.recording.controller.STANDBY_HOLD_S): it feeds those packets to
        # :meth:`on_packet`, so the pre-event media written and fsynced at a press reaches
        # the press (the muxer interleaves: video waits for the audio of its time).
        self.release_held_audio: Callable[[], None] = lambda: None

    # --- commands ---------------------------------------------------------------------------
    def start(self, *, reason: str = "button", flags: list[str] | None = None) -> str:
        """Begin a recording with the pre-event buffer; returns the recording id."""
        if self.state == RecorderState.RECORDING:
            assert self.recording_id is not None
            return self.recording_id
        if self.state == RecorderState.FAULT:
            raise RecorderError(f"recorder is in fault state: {self.fault_reason}")
        if self.state == RecorderState.STOPPING:
            self._finish_stop()
        self.recording_id = uuid.uuid4().hex
        self._seq = 0
        self.state = RecorderState.RECORDING
        packets = self.preroll.drain()
        preroll_us = 0
        first_video = next((p for p in packets if p.kind == self._anchor), None)
        seg_flags = ["preroll"] if first_video is not None else []
        seg_flags += list(flags or [])
        self._pending_flags = seg_flags
        if first_video is not None:
            preroll_us = self._latest_us - first_video.pts_us
        # Feedback first: the officer feels the start before any byte is written.
        self.events(
            "recording_started",
            {"recording_id": self.recording_id, "reason": reason, "preroll_us": preroll_us},
        )
        if first_video is not None:
            for p in packets:
                self._record(p)
                if self.state is RecorderState.FAULT:
                    raise RecorderError(f"the recording could not start: {self.fault_reason}")
        self.release_held_audio()
        if self.state is RecorderState.FAULT:
            raise RecorderError(f"the recording could not start: {self.fault_reason}")
        # The pre-roll goes to storage in one burst (on the worker): make it durable right
        # after, not at the next periodic sync, so a power cut right after a press keeps the
        # pre-event media (every complete age chunk; the chunk being filled cannot be written
        # before it is full).
        self.sync()
        return self.recording_id

    def stop(self, *, reason: str = "button") -> None:
        """End the recording; the last segment is sealed once the audio tail arrived."""
        if self.state != RecorderState.RECORDING:
            return
        self.state = RecorderState.STOPPING
        self._stop_reason = reason
        seg = self._current
        end = seg.routed_end_us if seg is not None else None
        self._stop_at_us = end if end is not None else self._latest_us
        if seg is not None:
            seg.boundary_us = self._stop_at_us
            seg.closing_since_us = self._latest_us
            self._seal_closing()  # a previous roll still waiting for audio
            self._closing, self._current = seg, None
        self._maybe_finish_stop()

    def bookmark(self, label: str, *, item: str | None = None, mono_us: int | None = None,
                 extra: dict[str, Any] | None = None) -> bool:
        """Mark a moment of the current recording (media time); False when not recording."""
        seg = self._current
        if self.state != RecorderState.RECORDING or seg is None:
            return False
        at = mono_us if mono_us is not None else self._latest_us
        mark: dict[str, Any] = {"label": label, "mono_us": at, "offset_us": at - seg.start_mono_us}
        if item:
            mark["item"] = item
        mark.update({k: v for k, v in (extra or {}).items() if v is not None})
        seg.bookmarks.append(mark)
        self.events("bookmark", {"recording_id": self.recording_id, "seq": seg.seq, **mark})
        return True

    def fault(self, reason: str) -> None:
        """Enter the fault state, sealing whatever is open (or leaving it to recovery)."""
        if self.state == RecorderState.FAULT:
            return
        log.error("recorder fault: %s", reason)
        self.state = RecorderState.FAULT
        self.fault_reason = reason
        segments = (self._closing, self._current)
        self._closing = self._current = None
        for seg in segments:
            if seg is not None:
                seg.flags.append("fault")
                self._seal(seg)
        self._after_work("fault", {"reason": reason, "recording_id": self.recording_id})

    def set_segment_s(self, seconds: float) -> None:
        """Change the segment length (remote configuration); applies from the next roll."""
        self._segment_us = int(seconds * 1_000_000)

    def clear_fault(self) -> None:
        """Return to standby after the cause was removed (pipeline restarted)."""
        if self.state == RecorderState.FAULT:
            self.state = RecorderState.STANDBY
            self.fault_reason = None
            self.recording_id = None

    # --- media ------------------------------------------------------------------------------
    def on_packet(self, packet: MediaPacket) -> None:
        """Route one encoded packet; called for every video and audio packet."""
        if packet.kind == "video":
            if self.last_video_index >= 0 and packet.index > self.last_video_index + 1:
                self.frames_gap += packet.index - self.last_video_index - 1
            self.last_video_index = packet.index
            self._latest_us = packet.pts_us
        elif self._anchor == "audio":
            self._latest_us = packet.pts_us + packet.duration_us
        if self.state == RecorderState.FAULT:
            self.preroll.push(packet)
            return
        if self.state == RecorderState.RECORDING:
            self._record(packet)
        else:
            if self.state == RecorderState.STOPPING and packet.kind == "audio":
                self._route(packet)
            else:
                self.preroll.push(packet)
            self._maybe_finish_stop()

    def tick(self, now_mono_us: int) -> None:
        """Periodic work: hand the routed packets to the worker; give up waiting for late
        audio."""
        self._work.flush()
        closing = self._closing
        since = closing.closing_since_us if closing is not None else None
        if since is not None and now_mono_us - since > _AUDIO_TAIL_US:
            if self.state == RecorderState.STOPPING:
                self._finish_stop()
            else:
                self._seal_closing()

    def sync(self) -> None:
        """fsync the open segments (called about once a second; on the worker)."""
        for seg in (self._current, self._closing):
            if seg is not None:
                self._work.io(seg, functools.partial(self._port.sync, seg.handle))

    def poll(self) -> None:
        """Take in the outcomes of finished file work (controller thread, every loop)."""
        self._work.poll()

    def drain(self) -> None:
        """Wait for all file work routed so far and take in its outcomes (shutdown)."""
        self._work.drain()

    @property
    def backlog(self) -> int:
        """File work (packets, fsyncs, seals) not yet done by the worker."""
        return self._work.backlog

    # --- internals --------------------------------------------------------------------------
    def _record(self, packet: MediaPacket) -> None:
        """Route a packet of the recording, opening or rolling segments at keyframes."""
        if packet.kind == self._anchor and (packet.keyframe or packet.kind == "audio"):
            if self._current is None:
                self._current = self._open(packet.pts_us, self._pending_flags)
                if self._current is not None:
                    self._pending_flags = []
            elif self._should_roll(packet):
                self._roll(packet.pts_us)
            if self._current is None:
                return  # the port deferred the open, or it failed (the recorder is in fault)
        self._route(packet)
        if self._closing is not None:
            self._maybe_seal_closing(packet)

    def _should_roll(self, packet: MediaPacket) -> bool:
        seg = self._current
        return seg is not None and packet.pts_us - seg.start_mono_us >= self._segment_us

    def _open(self, start_us: int, flags: list[str]) -> RoutedSegment | None:
        """Open the next segment → None if the port deferred it (:class:`OpenDeferred`: asked
        again at the next keyframe), or if the store cannot (fault, sealing what is open)."""
        assert self.recording_id is not None
        try:
            handle = self._port.open_segment(recording_id=self.recording_id, seq=self._seq,
                                             start_mono_us=start_us, flags=list(flags))
        except OpenDeferred:
            return None
        except (StorageError, OSError, EvidenceError) as exc:
            log.error("opening segment %s failed: %s", self._seq, exc)
            kind = "evidence" if isinstance(exc, EvidenceError) else "storage"
            self.fault(f"{kind}: {exc}")
            return None
        writer = SegmentWriter(
            handle.sink,
            video=self._video,
            audio=self._audio,
            audio_extradata=self._audio_extradata,
            audio_bitrate=self._audio_bitrate,
        )
        seg = RoutedSegment(handle=handle, writer=writer, seq=self._seq, start_mono_us=start_us,
                          flags=list(flags))
        self._seq += 1
        return seg

    def _roll(self, boundary_us: int) -> None:
        self._seal_closing()
        old = self._current
        assert old is not None
        old.boundary_us = boundary_us
        old.closing_since_us = self._latest_us
        prepare_seal(self._port, old)  # the world as it is where the segment ends
        self._closing, self._current = old, None
        self._current = self._open(boundary_us, [])
        if self._audio is None:
            self._seal_closing()  # no audio tail to wait for

    def _route(self, packet: MediaPacket) -> None:
        target = self._current
        closing = self._closing
        if closing is not None and closing.boundary_us is not None and packet.pts_us < closing.boundary_us:
            target = closing
        if target is None:
            return
        end = packet.pts_us + packet.duration_us
        if packet.kind == "video":
            target.routed_end_us = end
        else:
            target.routed_audio_end_us = end
        self._work.write(target, packet)

    def _maybe_seal_closing(self, packet: MediaPacket) -> None:
        closing = self._closing
        if closing is None or closing.boundary_us is None:
            return
        if packet.kind == "audio" and packet.pts_us >= closing.boundary_us:
            self._seal_closing()

    def _seal_closing(self) -> None:
        if self._closing is not None:
            seg, self._closing = self._closing, None
            self._seal(seg)

    def _maybe_finish_stop(self) -> None:
        if self.state != RecorderState.STOPPING:
            return
        closing = self._closing
        if closing is None:
            self._finish_stop()
            return
        audio_end = closing.routed_audio_end_us
        if self._audio is None or (audio_end is not None and closing.boundary_us is not None
                                   and audio_end >= closing.boundary_us):
            self._finish_stop()

    def _finish_stop(self) -> None:
        self._seal_closing()
        rid = self.recording_id
        self.state = RecorderState.STANDBY
        self._after_work("recording_stopped", {"recording_id": rid, "reason": self._stop_reason})
        self.recording_id = None

    def _seal(self, seg: RoutedSegment) -> None:
        """Seal one segment on the worker (reading its manifest's world now if the roll did not);
        a storage failure leaves it to crash recovery and faults."""
        if seg.sealing is None:
            prepare_seal(self._port, seg)
        self._work.seal(seg, self._port, self._announce_sealed)

    def _announce_sealed(self, manifest: dict[str, Any] | None) -> None:
        self.sealed.add(manifest)
        if manifest is not None:
            self.events("segment_sealed", {"manifest": manifest})

    def _after_work(self, kind: str, data: dict[str, Any]) -> None:
        """Emit an event once the file work submitted before it is done (a stop or fault is
        announced after the seals it caused)."""
        self._work.then(functools.partial(self.events, kind, data))
