"""Canonical JSON: the exact bytes that are hashed and signed.

A signature is over bytes, so the same manifest must always serialise to the same bytes on
the device and in the verifier: keys sorted, no insignificant whitespace, UTF-8 (non-ASCII
kept as is). Floats are refused outright because their decimal rendering is not exact and
varies between implementations; positions are integers in 1e-7 degrees, times are ISO-8601
strings (microseconds, ``Z``) or integer microseconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["canonical_json", "check_no_floats", "parse_canonical"]


def check_no_floats(value: Any, path: str = "$") -> None:
    """Raise ``TypeError`` naming the JSON path of the first value that is not exact.

    Allowed: ``None``, ``bool``, ``int``, ``str``, lists/tuples and string-keyed mappings of
    these. Everything else (floats, bytes, sets, objects) is rejected.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        raise TypeError(f"{path}: float {value!r} not allowed in canonical JSON (use integers)")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: key {key!r} is not a string")
            check_no_floats(item, f"{path}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_no_floats(item, f"{path}[{i}]")
        return
    raise TypeError(f"{path}: {type(value).__name__} is not representable in canonical JSON")


def canonical_json(value: Any) -> bytes:
    """Serialise ``value`` to its canonical UTF-8 bytes (TypeError on floats or odd types)."""
    check_no_floats(value)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return text.encode("utf-8")


def _reject_float(text: str) -> Any:
    raise ValueError(f"float {text!r} in canonical JSON")


def parse_canonical(data: bytes) -> Any:
    """Parse canonical JSON, refusing floats (a document that holds one was not ours)."""
    try:
        return json.loads(data.decode("utf-8"), parse_float=_reject_float)
    except RecursionError:  # a crafted "[[[[…" must be a parse error, not a crash
        raise ValueError("JSON nested too deeply") from None
