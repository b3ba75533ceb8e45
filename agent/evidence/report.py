"""The verifier's findings and their two renderings: plain language and JSON.

A finding is one line a person can act on: what, where, and whether it is a failure (the
evidence cannot be relied on as is), a warning (explained irregularity: a recovered segment,
a time gap) or a confirmation (what was checked and found intact).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Finding", "Level", "Report"]

Level = Literal["fail", "warn", "ok"]
_LABEL = {"fail": "FAIL", "warn": "WARN", "ok": " OK "}


@dataclass(frozen=True, slots=True)
class Finding:
    """One verification result; ``code`` is stable for machines, ``message`` is for people."""

    level: Level
    code: str
    where: str
    message: str


@dataclass(slots=True)
class Report:
    """Everything ``verify`` found, plus the log state it verified."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    log_size: int | None = None
    log_root: str | None = None
    checkpoint_size: int | None = None
    segments: int = 0
    device_id: str | None = None

    def add(self, level: Level, code: str, where: str, message: str) -> None:
        """Record a finding."""
        self.findings.append(Finding(level, code, where, message))

    @property
    def ok(self) -> bool:
        """True when nothing failed (warnings allowed)."""
        return not self.failures

    @property
    def failures(self) -> list[Finding]:
        """The failed checks."""
        return [f for f in self.findings if f.level == "fail"]

    @property
    def warnings(self) -> list[Finding]:
        """The warnings."""
        return [f for f in self.findings if f.level == "warn"]

    def codes(self) -> set[str]:
        """Codes of failures and warnings (tests and scripts match on these)."""
        return {f.code for f in self.findings if f.level != "ok"}

    def to_json(self) -> dict[str, Any]:
        """Machine form."""
        return {
            "path": self.path, "ok": self.ok, "device_id": self.device_id,
            "log": {"size": self.log_size, "root": self.log_root,
                    "checkpoint_size": self.checkpoint_size},
            "segments": self.segments,
            "summary": {"failures": len(self.failures), "warnings": len(self.warnings),
                        "intact": sum(f.level == "ok" for f in self.findings)},
            "findings": [asdict(f) for f in self.findings],
        }

    def dumps(self) -> str:
        """JSON text."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False)

    def render(self) -> str:
        """Human report: one line per finding (failures first), then a summary."""
        order = {"fail": 0, "warn": 1, "ok": 2}
        lines = [f"Verifying {self.path}"]
        if self.device_id:
            lines.append(f"  device {self.device_id}; log of {self.log_size} entries, "
                         f"signed checkpoint covers {self.checkpoint_size}")
        for f in sorted(self.findings, key=lambda f: order[f.level]):
            lines.append(f"[{_LABEL[f.level]}] {f.where}: {f.message}")
        verdict = "INTACT" if self.ok else "NOT INTACT"
        lines.append(f"{verdict}: {self.segments} segments, {len(self.failures)} failures, "
                     f"{len(self.warnings)} warnings")
        return "\n".join(lines)
