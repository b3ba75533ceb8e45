"""Spec files: the thresholds a unit is judged against, each tied to the clause it comes from.

A spec is TOML with ``[[check]]`` tables (see ``config/spec/``). A check names a *metric* the
bench measures; judging compares the measured value with the threshold and yields ``pass``,
``fail`` or ``not measured`` (with the reason -- a sim-only stimulus on a real unit, a
scenario that could not run). A check is never silently dropped: a lab must see every clause.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hw.errors import ConfigError

__all__ = ["Check", "Measurement", "Spec", "Verdict", "judge", "load_spec"]

_OPS = (">=", "<=", "==")


@dataclass(frozen=True, slots=True)
class Check:
    """One measurable requirement."""

    id: str
    clause: str
    metric: str
    op: str
    threshold: float | str
    unit: str
    source: str
    confirmed: bool


@dataclass(frozen=True, slots=True)
class Spec:
    """A named list of checks loaded from one file."""

    name: str
    path: str
    checks: tuple[Check, ...]


@dataclass(frozen=True, slots=True)
class Measurement:
    """A measured figure, or why it could not be measured (``value`` is None)."""

    value: float | str | None
    unit: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Verdict:
    """A check judged against a measurement."""

    spec: str
    check: Check
    outcome: str  # pass | fail | not measured
    value: float | str | None
    detail: str

    def to_json(self) -> dict[str, Any]:
        """The verdict as report.json records it."""
        c = self.check
        return {"spec": self.spec, "id": c.id, "clause": c.clause, "metric": c.metric,
                "op": c.op, "threshold": c.threshold, "unit": c.unit, "source": c.source,
                "confirmed": c.confirmed, "outcome": self.outcome, "value": self.value,
                "detail": self.detail}


def load_spec(path: Path) -> Spec:
    """Parse and validate a spec file; errors name the file and the check."""
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read spec {path}: {exc}") from exc
    raw = doc.get("check")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"spec {path} has no [[check]] tables")
    checks = tuple(_check(item, path, i) for i, item in enumerate(raw))
    ids = [c.id for c in checks]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise ConfigError(f"spec {path}: duplicate check ids {sorted(dup)}")
    name = str(doc.get("spec", {}).get("name", Path(path).stem))
    return Spec(name=name, path=str(path), checks=checks)


def _check(item: Any, path: Path, index: int) -> Check:
    where = f"spec {path}, check #{index + 1}"
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: not a table")
    for key in ("id", "clause", "metric", "op", "threshold", "unit"):
        if key not in item:
            raise ConfigError(f"{where}: missing key {key!r}")
    if item["op"] not in _OPS:
        raise ConfigError(f"{where} ({item['id']}): op must be one of {', '.join(_OPS)}")
    threshold = item["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, int | float | str):
        raise ConfigError(f"{where} ({item['id']}): threshold must be a number or a string")
    if isinstance(threshold, str) and item["op"] != "==":
        raise ConfigError(f"{where} ({item['id']}): a text threshold only works with ==")
    return Check(
        id=str(item["id"]), clause=str(item["clause"]), metric=str(item["metric"]),
        op=str(item["op"]), threshold=threshold, unit=str(item["unit"]),
        source=str(item.get("source", item.get("note", ""))),
        confirmed=bool(item.get("confirmed", False)),
    )


def judge(spec: Spec, measured: dict[str, Measurement]) -> list[Verdict]:
    """Judge every check of ``spec``; a metric nobody measured is 'not measured', never a pass."""
    out: list[Verdict] = []
    for c in spec.checks:
        m = measured.get(c.metric)
        if m is None or m.value is None:
            why = m.detail if m is not None and m.detail else "not measurable in this run"
            out.append(Verdict(spec.name, c, "not measured", None, why))
            continue
        ok = _compare(m.value, c.op, c.threshold)
        out.append(Verdict(spec.name, c, "pass" if ok else "fail", m.value, m.detail))
    return out


def _compare(value: float | str, op: str, threshold: float | str) -> bool:
    if isinstance(value, str) or isinstance(threshold, str):
        return op == "==" and str(value) == str(threshold)
    if math.isnan(value):
        return False
    if op == ">=":
        return value >= threshold
    if op == "<=":
        return value <= threshold
    return math.isclose(value, threshold, rel_tol=0.0, abs_tol=1e-9)
