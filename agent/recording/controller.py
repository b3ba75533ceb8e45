"""The controller: one thread, one queue, the only owner of recorder state.

The camera's encoder thread, the audio callback, gpiozero's edge callbacks, the GPS reader,
the control socket and paho's network loop all *post* to :meth:`Controller.post`; only the
controller thread reads the queue and mutates state (DESIGN.md §1). That single rule is what
makes the recorder's behaviour reproducible in tests: the same event sequence gives the same
evidence.

Commands (button gestures, ``bodycam ctl``, MQTT ``cmd/*``) all become :class:`Request`
objects answered through the same state machine, so a remote start behaves exactly like a
press.

The recorder's file work (muxing, encryption, fsyncs, seals) runs on the segment worker
(:mod:`agent.recording.segment_worker`); the loop takes in its outcomes with ``recorder.poll()`` after
every event (the worker posts a ``wake`` event when one is ready) and drains it before it
exits, so nothing submitted is lost at shutdown.

Packet observers and periodic tasks are side channels (:mod:`agent.side_channel`): the
recorder has the packet before any observer sees it, and whatever an observer or a periodic
task raises is logged (rate-limited) and counted, never the loop's or the recording's end.

Locking: ``queue.SimpleQueue`` and the camera's frame ``deque`` (appended by the camera
thread, popped by the controller: both atomic) are the only shared structures;
:class:`Request` carries its own ``threading.Event`` for the reply. Everything else belongs
to the controller thread.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.recording.aac import AacEncoder
from agent.recording.gestures import GestureRecognizer
from agent.recording.packets import MediaPacket
from agent.recording.recorder import Recorder
from agent.recording.segment_state import RecorderState
from agent.side_channel import SideChannel
from hw.audio import AudioChunk
from hw.camera import EncodedFrame
from hw.errors import CommandRejected, RecorderError

__all__ = ["Controller", "Request"]

log = logging.getLogger(__name__)

# The loop's tick (gestures' hold, the recorder's batch to its worker, policies): about ten
# a second. It rides on whatever wakes the loop anyway -- the microphone's chunk, every 100 ms
# -- once _TICK_MIN_S have passed since the last one, and the loop wakes by itself only when
# nothing came for _TICK_WAIT_S: ~10 wake-ups a second instead of the ~20 a fixed 50 ms wait
# gave (an audio chunk, then the wait running out half-way to the next one).
_TICK_MIN_S = 0.075
_TICK_WAIT_S = 0.15

# How much audio the AAC encoder may hold before it encodes (AacEncoder.encode's
# ``hold_frames``; a call's cost is mostly fixed, so fewer, longer calls are cheaper). In
# standby the packets only feed the pre-event ring, which is not on storage: a second at a
# time (at most half the ring, so a short ring still holds audio at a press), and a press
# releases what is held right after its feedback (Recorder.release_held_audio). While
# recording, none: held audio would hold the video back too (the muxer interleaves), and
# what has not reached the file is lost in a crash -- 0.3 s of hold cost ~0.4 s more media
# per killed process (tests/recording/test_crash.py). While stopping, none: the tail is what
# the stop waits for.
STANDBY_HOLD_S = 1.0
_HOLDING = frozenset({RecorderState.STANDBY, RecorderState.FAULT})  # the ring is the audio's end


@dataclass
class Request:
    """A command for the controller, answered once via :meth:`wait`.

    ``origin`` says how it arrived (``button``, ``ctl``, ``mqtt``, ``policy``); ``origin_detail``
    says who, as far as that channel knows: the control socket's peer uid, an MQTT command's
    id and claimed issuer. Both go into the evidence log with every evidence-changing command.
    """

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    origin: str = "ctl"
    result: dict[str, Any] | None = None
    error: str | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)
    on_done: Callable[[Request], None] | None = None
    origin_detail: dict[str, Any] = field(default_factory=dict)

    @property
    def origin_record(self) -> dict[str, Any]:
        """``{"via": origin, **origin_detail}``: the ``origin`` of a log entry."""
        return {**self.origin_detail, "via": self.origin}

    def succeed(self, result: dict[str, Any] | None = None) -> None:
        """Answer with a result."""
        self.result = result or {}
        self._finish()

    def fail(self, reason: str) -> None:
        """Answer with an error."""
        self.error = reason
        self._finish()

    def _finish(self) -> None:
        self._done.set()
        if self.on_done is not None:
            try:
                self.on_done(self)
            except Exception:  # a reply channel that broke must not take the controller down
                log.exception("delivering the reply to %s failed", self.name)

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until answered (from any thread but the controller's)."""
        return self._done.wait(timeout)


Handler = Callable[[Request], dict[str, Any] | None]


class Controller:
    """Runs the recorder's event loop."""

    def __init__(
        self,
        *,
        recorder: Recorder,
        aac: AacEncoder | None,
        gestures: GestureRecognizer,
        frame_interval_us: int,
        sync_interval_s: float = 1.0,
        mono: Callable[[], float] = time.monotonic,
    ) -> None:
        self.recorder = recorder
        self.aac = aac
        self.gestures = gestures
        self._frame_us = frame_interval_us
        self._sync_interval = sync_interval_s
        self._mono = mono
        self._queue: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._frames: deque[EncodedFrame] = deque()  # appended by the camera thread only
        self._handlers: dict[str, Handler] = {}
        self._gesture_handlers: dict[str, Callable[[], None]] = {}
        self._periodic: list[SideChannel[[float]]] = []
        self._packet_observers: list[SideChannel[[MediaPacket]]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sync = 0.0
        self.heartbeat = mono()
        self.frames_in = 0
        self.wakeups = 0  # loop iterations: what the controller costs beyond its work
        self.audio_chunks_in = 0
        self.max_queue = 0
        recorder.release_held_audio = self._release_held_audio
        hold_s = min(STANDBY_HOLD_S, recorder.preroll.seconds / 2)
        self._standby_hold = max(1, int(hold_s * 1_000_000 / aac.frame_us)) if aac else 1

    # --- wiring (before start) --------------------------------------------------------------
    def handle(self, name: str, handler: Handler) -> None:
        """Register the handler of command ``name`` (runs on the controller thread)."""
        self._handlers[name] = handler

    def on_gesture(self, name: str, action: Callable[[], None]) -> None:
        """Register what a button gesture does."""
        self._gesture_handlers[name] = action

    def every_tick(self, fn: Callable[[float], None]) -> None:
        """Run ``fn(now)`` at each tick (about 10 times a second, at most 150 ms apart)."""
        self._periodic.append(SideChannel(f"periodic task {_name(fn)}", fn))

    def observe_packets(self, fn: Callable[[MediaPacket], None]) -> None:
        """See every encoded packet, after the recorder (bitrate metering, benches)."""
        self._packet_observers.append(SideChannel(f"packet observer {_name(fn)}", fn))

    # --- producers (any thread) -------------------------------------------------------------
    def post(self, kind: str, payload: Any = None) -> None:
        """Queue an event; never blocks."""
        self._queue.put((kind, payload))

    def on_frame(self, frame: EncodedFrame) -> None:
        """Camera sink: the frame waits for the controller's next wake-up -- the next event
        (audio comes ten times a second) or its own tick (at most 150 ms) -- instead of
        waking it for each of 30 frames a second; frames are handled in arrival order before
        that event, so a press still sees every frame captured before it."""
        self._frames.append(frame)

    def on_audio(self, chunk: AudioChunk) -> None:
        """Microphone sink."""
        self._queue.put(("audio", chunk))

    def on_press(self, t: float) -> None:
        """Button pressed (gpiozero thread)."""
        self._queue.put(("press", t))

    def on_release(self, t: float) -> None:
        """Button released (gpiozero thread)."""
        self._queue.put(("release", t))

    def submit(self, request: Request) -> Request:
        """Queue a command; the caller may :meth:`Request.wait` for the answer."""
        self._queue.put(("request", request))
        return request

    def call(self, name: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        """Run a command and wait for its result (not from the controller thread)."""
        req = self.submit(Request(name, args))
        if not req.wait(timeout):
            raise RecorderError(f"command {name!r} timed out after {timeout} s")
        if req.error is not None:
            raise CommandRejected(req.error)
        return req.result or {}

    # --- loop -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the controller thread."""
        self._thread = threading.Thread(target=self._run, name="controller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to finish the events already queued and exit."""
        self._queue.put(("quit", None))
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """True while the loop thread lives."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def side_channel_failures(self) -> int:
        """Failures of the recorder's event consumer, packet observers and periodic tasks
        (each logged where it happened; none stopped anything)."""
        periodic = sum(c.failures for c in self._periodic)
        observers = sum(c.failures for c in self._packet_observers)
        return self.recorder.events.failures + periodic + observers

    def queue_depth(self) -> int:
        """Events and frames waiting (a growing queue means the controller cannot keep up)."""
        return self._queue.qsize() + len(self._frames)

    def _run(self) -> None:
        get, mono = self._queue.get, self._mono
        last_tick = mono() - _TICK_WAIT_S  # the first tick at once
        while True:
            try:
                kind, payload = get(timeout=max(0.0, last_tick + _TICK_WAIT_S - mono()))
            except queue.Empty:
                kind, payload = "idle", None
            self.wakeups += 1
            if self._frames:
                self._take_frames()
            if kind == "quit":
                self._take_outcomes(self.recorder.drain)
                break
            if kind != "idle":
                try:
                    self._dispatch(kind, payload)
                except Exception:  # one bad event must not end recording; it is logged loudly
                    log.exception("controller: handling %s failed", kind)
            self._take_outcomes(self.recorder.poll)
            now = mono()
            self.heartbeat = now
            if now - last_tick >= _TICK_MIN_S:
                last_tick = now
                self._tick(now)
            depth = self._queue.qsize() + len(self._frames)
            self.max_queue = max(self.max_queue, depth)

    def _take_frames(self) -> None:
        """Handle the frames the camera delivered since the last wake-up, oldest first."""
        frames, packet, frame_us = self._frames, self._packet, self._frame_us
        while frames:
            f = frames.popleft()
            self.frames_in += 1
            try:
                packet(MediaPacket("video", f.data, f.pts_us, frame_us, f.keyframe, f.index))
            except Exception:  # one bad frame must not end recording; it is logged loudly
                log.exception("controller: handling a video frame failed")

    @staticmethod
    def _take_outcomes(take: Callable[[], None]) -> None:
        try:
            take()
        except Exception:  # an outcome's handler failed: logged, the loop goes on
            log.exception("controller: handling a segment worker outcome failed")

    def _dispatch(self, kind: str, payload: Any) -> None:
        if kind == "audio":
            self.audio_chunks_in += 1
            if self.aac is not None:
                packet = self._packet
                hold = self._standby_hold if self.recorder.state in _HOLDING else 1
                for p in self.aac.encode(payload, hold_frames=hold):
                    packet(p)
        elif kind == "press":
            self._gestures(self.gestures.pressed(payload))
        elif kind == "release":
            # a hold the tick has not seen yet (it runs ~10 times a second) is still a hold
            # when the release comes after hold_s: never a click that would start recording
            self._gestures(self.gestures.poll(payload) + self.gestures.released(payload))
        elif kind == "request":
            self._request(payload)
        elif kind == "call":
            payload()

    def _release_held_audio(self) -> None:
        """A start's call (inside :meth:`Recorder.start`, after its feedback): the audio held
        in standby goes to the recording now, to the recorder and then the observers."""
        if self.aac is not None:
            for p in self.aac.release():
                self._packet(p)

    def _packet(self, packet: MediaPacket) -> None:
        self.recorder.on_packet(packet)
        for fn in self._packet_observers:
            fn(packet)

    def _gestures(self, names: list[str]) -> None:
        for name in names:
            action = self._gesture_handlers.get(name)
            if action is not None:
                action()

    def _request(self, req: Request) -> None:
        handler = self._handlers.get(req.name)
        if handler is None:
            req.fail(f"unknown command {req.name!r}; known: {', '.join(sorted(self._handlers))}")
            return
        try:
            req.succeed(handler(req))
        except (CommandRejected, RecorderError, ValueError, KeyError, TypeError) as exc:
            req.fail(str(exc) or type(exc).__name__)

    def _tick(self, now: float) -> None:
        self._gestures(self.gestures.poll(now))
        self.recorder.tick(int(now * 1_000_000))
        if now - self._last_sync >= self._sync_interval:
            self._last_sync = now
            self.recorder.sync()
        for fn in self._periodic:
            fn(now)


def _name(fn: Callable[..., Any]) -> str:
    """A callback's name for the log."""
    return str(getattr(fn, "__qualname__", None) or repr(fn))
