"""Canonical JSON: the signed bytes are reproducible and never hold an inexact number."""

from __future__ import annotations

import pytest

from agent.evidence.canonical import canonical_json, parse_canonical


def test_sorted_compact_utf8() -> None:
    """Keys sort, separators are compact, non-ASCII stays UTF-8."""
    assert canonical_json({"b": 1, "a": ["x", None, True], "c": "违章停车"}) == \
        '{"a":["x",null,true],"b":1,"c":"违章停车"}'.encode()


def test_float_refused_with_its_path() -> None:
    """A float anywhere is refused and the error names where it is."""
    with pytest.raises(TypeError, match=r"\$\.gps\.track\[1\]\[2\]"):
        canonical_json({"gps": {"track": [[1], ["t", 1, 39.9]]}})


def test_non_string_keys_and_odd_types_refused() -> None:
    """Only JSON's exact types pass."""
    with pytest.raises(TypeError, match="key 1"):
        canonical_json({1: "x"})
    with pytest.raises(TypeError, match="bytes"):
        canonical_json({"a": b"x"})


def test_parse_refuses_floats_and_round_trips() -> None:
    """Parsing gives back the same value; a float in a document marks it as not ours."""
    doc = {"z": {"lat_e7": -339_000_001}, "a": "Z"}
    assert parse_canonical(canonical_json(doc)) == doc
    with pytest.raises(ValueError, match="float"):
        parse_canonical(b'{"a":1.5}')
