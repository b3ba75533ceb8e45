"""Remote configuration changes (MQTT ``config_set``): validated, applied live, persisted.

Only keys on the sync allow-list reach here (nothing that touches evidence integrity: keys,
recipients, encryption, audio, overlay, retention). Each change is validated by the same
schema as the file (:meth:`Config.replace`), applied to the running components, and written
atomically to ``state/overrides.json`` so it survives a restart; the shipped configuration
file is never rewritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.atomic import atomic_write
from agent.config import Config
from hw.errors import CommandRejected, ConfigError

__all__ = ["LiveConfig", "load_overrides", "with_overrides"]


def _path(data_dir: Path) -> Path:
    return Path(data_dir) / "state" / "overrides.json"


def load_overrides(data_dir: Path) -> dict[str, Any]:
    """The persisted remote changes (empty when none or unreadable)."""
    try:
        doc = json.loads(_path(data_dir).read_bytes())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def with_overrides(cfg: Config, data_dir: Path) -> Config:
    """``cfg`` with the persisted remote changes applied (invalid ones are ignored)."""
    for key, value in load_overrides(data_dir).items():
        try:
            cfg = cfg.replace(key, value)
        except ConfigError:
            continue
    return cfg


class LiveConfig:
    """The running configuration: remote changes are validated, applied to the parts that
    use them, then persisted.

    The composition root registers, per allow-listed key, the effect that applies a new value
    to the running part (:meth:`on_change`), and optionally a check that can still refuse it
    (a matter code the catalogue does not know). A key with no effect registered only takes
    effect at the next start. Not thread-safe: the controller thread calls :meth:`set`.
    """

    def __init__(self, cfg: Config, data_dir: Path) -> None:
        self._cfg = cfg
        self._data_dir = Path(data_dir)
        self._effects: dict[str, Callable[[Any], object]] = {}
        self._checks: dict[str, Callable[[Any], None]] = {}

    @property
    def cfg(self) -> Config:
        """The configuration as it is now (file, persisted overrides, changes since start)."""
        return self._cfg

    def value(self, key: str) -> Any:
        """The current value of a dotted key (``recording.segment_s``)."""
        section, _, name = key.partition(".")
        return getattr(getattr(self._cfg, section), name)

    def on_change(self, key: str, effect: Callable[[Any], object], *,
                  check: Callable[[Any], None] | None = None) -> None:
        """Apply ``effect(value)`` when ``key`` changes; ``check(value)`` may refuse it first
        (raising :class:`CommandRejected`) before anything is applied."""
        self._effects[key] = effect
        if check is not None:
            self._checks[key] = check

    def set(self, key: str, value: Any) -> dict[str, Any]:
        """Validate, apply to the running parts, persist; returns what was set."""
        try:
            new = self._cfg.replace(key, value)
        except ConfigError as exc:
            raise CommandRejected(str(exc)) from None
        section, _, name = key.partition(".")
        value = getattr(getattr(new, section), name)
        check = self._checks.get(key)
        if check is not None:
            check(value)
        effect = self._effects.get(key)
        if effect is not None:
            effect(value)
        self._cfg = new
        overrides = load_overrides(self._data_dir)
        overrides[key] = value
        (self._data_dir / "state").mkdir(exist_ok=True)
        atomic_write(_path(self._data_dir), json.dumps(overrides, sort_keys=True).encode())
        return {"key": key, "value": value}
