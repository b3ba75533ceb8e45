"""The recording pipeline, in the order the bytes flow.

1. :mod:`.packets` -- encoded media as the recorder holds it (H.264 from the camera's encoder,
   AAC from :mod:`.aac`, which encodes the microphone's PCM once, continuously).
2. :mod:`.preroll` -- the last N seconds of packets, keyframe-aligned, held while in standby.
3. :mod:`.controller` -- the one thread that owns recorder state: every packet, press and
   tick arrives on its queue; :mod:`.gestures` turns button edges into what the officer meant,
   :mod:`.control` starts and stops recordings whoever asks, :mod:`.feedback` answers the
   officer with LEDs, buzzer and vibration.
4. :mod:`.recorder` -- the state machine (standby -> recording -> stop / fault) that routes
   packets to gapless rolling segments (:mod:`.segment_state`).
5. :mod:`.file_work` hands the recorder's batched writes, fsyncs and seals to
   :mod:`.segment_worker` -- the thread that does the file work so the controller never waits:
   :mod:`.segment` muxes packets into fragmented MP4 and streams them into the evidence sink.
6. :mod:`.store_port` -- the segment's seal: manifest, signature, log entry, via the evidence store.
7. :mod:`agent.side_channel` -- the boundary beyond which sealed segments are only *heard
   about* (MQTT, telemetry, status, offload); nothing past it can fail a seal. It sits beside
   this package, not in it: the evidence store guards its own after-seal hook with it too, and
   the evidence code (shared with the station) must not depend on the recording pipeline.

:mod:`.fault_ports` holds the lab bench's fault injection, wrapped around the ports above (a
roll's media lost, for the bench to find) so the state machine knows nothing of it.

Nothing in this package imports :mod:`agent.app`; the parts reach the rest of the recorder
through the narrow views of :mod:`agent.ports`.
"""
