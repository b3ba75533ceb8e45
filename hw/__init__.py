"""Hardware of the recorder: one seam (a ``Protocol``) per device kind, the real driver and a
first-class simulator beside it. ``hw`` never imports ``agent``; :mod:`hw.factory` is the one
place that builds a hardware set from configuration.
"""
