"""bodycam-agent: the hardware-agnostic logic of a body-worn evidence recorder.

`agent` never imports a driver directly; it receives the hardware set built by
:mod:`hw.factory` and talks to it through the Protocols in :mod:`hw`.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("bodycam-agent")
except _metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+src"

__all__ = ["__version__"]
