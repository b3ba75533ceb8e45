"""Keeping the recorder fit on every controller tick.

* :mod:`.watches` -- *reading* the world: battery, storage and camera progress, each when due.
* :mod:`.reactions` -- *acting* on it: warnings, stopping before the battery dies, making room,
  restarting a stalled camera.
* :mod:`.liveness` -- *judging* the process: whether it still deserves systemd's watchdog ping.
"""
