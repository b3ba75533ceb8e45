"""The product version, as a plain string.

Kept static (not read from the installed distribution's metadata) because every ``bodycam``
invocation imports :mod:`agent`: ``importlib.metadata`` costs ~65 ms there, two thirds of a
``bodycam ctl`` round trip on this class of machine and far more on a Pi Zero. It must equal
``[project] version`` in pyproject.toml (tests/test_packaging.py checks both).
"""

__version__ = "0.1.0"
