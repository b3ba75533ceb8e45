"""The configuration schema's machinery: rules carried by dataclass fields, and the walk that
checks a parsed TOML document against them.

A section is a frozen dataclass whose fields carry their rule (type, range, choices, pattern)
in ``metadata`` (:func:`rule`, :func:`ruled`); :func:`build_section` rejects unknown keys,
coerces nothing silently (an integer is accepted where a float is asked) and raises
:class:`ConfigError` naming the key, the value and what is allowed. Nothing here knows the
recorder's sections (:mod:`agent.config_sections`) -- the collection station's configuration
uses the same machinery.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import field
from typing import Any

from hw.errors import ConfigError

__all__ = ["build_section", "build_table_array", "check_value", "merge", "rule", "ruled"]


def rule(
    doc: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] | None = None,
    pattern: str | None = None,
) -> dict[str, Any]:
    """Field metadata: a one-line meaning plus the constraint checked on load."""
    return {"doc": doc, "lo": lo, "hi": hi, "choices": choices, "pattern": pattern}


def ruled(default: Any, doc: str, **kw: Any) -> Any:
    """A scalar field with its rule (its default and one-line meaning)."""
    return field(default=default, metadata=rule(doc, **kw))


def merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_type(key: str, value: Any, tp: Any, source: str) -> Any:
    """Reject a value of the wrong TOML type; integers are accepted where a float is asked."""
    if tp is bool:
        ok = isinstance(value, bool)
        what = "true or false"
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        what = "an integer"
    elif tp is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        what = "a number"
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
        what = "a string"
    else:
        raise ConfigError(f"internal: unsupported type {_type_name(tp)}", key=key, source=source)
    if not ok:
        raise ConfigError(f"{value!r} is not {what}", key=key, source=source)
    return value


def _check_rule(key: str, value: Any, meta: Mapping[str, Any], source: str) -> None:
    """Range, choice and pattern rules from the field's metadata."""
    lo, hi = meta.get("lo"), meta.get("hi")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if lo is not None and value < lo:
            raise ConfigError(f"{value!r} is below the minimum {lo}", key=key, source=source)
        if hi is not None and value > hi:
            raise ConfigError(f"{value!r} is above the maximum {hi}", key=key, source=source)
    choices = meta.get("choices")
    if choices and value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{value!r} is not one of {allowed}", key=key, source=source)
    pattern = meta.get("pattern")
    if pattern and isinstance(value, str) and not re.fullmatch(pattern, value):
        raise ConfigError(f"{value!r} does not match {pattern}", key=key, source=source)


def check_value(key: str, value: Any, tp: Any, meta: Mapping[str, Any], source: str) -> Any:
    """Validate one value against its declared type and rule; return it (ints may become floats)."""
    if typing.get_origin(tp) is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{value!r} is not a list of {_type_name(item_tp)}", key=key, source=source)
        return [check_value(f"{key}[{i}]", v, item_tp, meta, source) for i, v in enumerate(value)]
    value = _check_type(key, value, tp, source)
    _check_rule(key, value, meta, source)
    return value


def build_section(cls: type[Any], raw: Any, name: str, source: str) -> Any:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"must be a table, got {raw!r}", key=name, source=source)
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    for k in raw:
        if k not in known:
            allowed = ", ".join(sorted(known))
            raise ConfigError(f"unknown key (allowed: {allowed})", key=f"{name}.{k}", source=source)
    values = {
        k: check_value(f"{name}.{k}", v, hints[k], known[k].metadata, source) for k, v in raw.items()
    }
    return cls(**values)


def build_table_array(tp: Any, raw: Any, name: str, source: str) -> list[Any]:
    """``[[name]]`` tables, each validated like a section; errors name ``name[i].key``."""
    (item_cls,) = typing.get_args(tp)
    if not isinstance(raw, list):
        raise ConfigError(f"must be an array of tables ([[{name}]]), got {raw!r}", key=name,
                          source=source)
    return [build_section(item_cls, item, f"{name}[{i}]", source) for i, item in enumerate(raw)]
