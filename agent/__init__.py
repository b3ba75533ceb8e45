"""bodycam-agent: the hardware-agnostic logic of a body-worn evidence recorder.

`agent` never imports a driver directly; it receives the hardware set built by
:mod:`hw.factory` and talks to it through the Protocols in :mod:`hw`.
"""

from agent._version import __version__

__all__ = ["__version__"]
