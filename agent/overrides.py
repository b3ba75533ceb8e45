"""Remote configuration changes (MQTT ``config_set``): validated, applied live, persisted.

Only keys on the sync allow-list reach here (nothing that touches evidence integrity: keys,
recipients, encryption, audio, overlay, retention). Each change is validated by the same
schema as the file (:meth:`Config.replace`), applied to the running components, and written
atomically to ``state/overrides.json`` so it survives a restart; the shipped configuration
file is never rewritten.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.atomic import atomic_write
from agent.config import Config
from agent.errors import CommandRejected, ConfigError, MatterError

if TYPE_CHECKING:
    from agent.app import Agent

__all__ = ["apply_live", "load_overrides", "with_overrides"]


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


def apply_live(agent: Agent, key: str, value: Any) -> dict[str, Any]:
    """Validate, apply to the running agent, persist; returns what was set."""
    try:
        new = agent.cfg.replace(key, value)
    except ConfigError as exc:
        raise CommandRejected(str(exc)) from None
    section, _, name = key.partition(".")
    value = getattr(getattr(new, section), name)
    if key == "matters.default" and value:
        try:
            agent.matters.lookup(value)
        except MatterError as exc:
            raise CommandRejected(str(exc)) from None
    _apply(agent, key, value)
    agent.cfg = new
    overrides = load_overrides(agent.data_dir)
    overrides[key] = value
    (agent.data_dir / "state").mkdir(exist_ok=True)
    atomic_write(_path(agent.data_dir), json.dumps(overrides, sort_keys=True).encode())
    return {"key": key, "value": value}


def _apply(agent: Agent, key: str, value: Any) -> None:
    if key == "recording.prerecord_s":
        agent.recorder.preroll.resize(value)
    elif key == "recording.segment_s":
        agent.recorder.set_segment_s(value)
    elif key == "recording.reminder_s":
        agent.feedback.set_reminder(value)
    elif key == "power.warn_min" and agent.power_watch is not None:
        agent.power_watch.policy.warn_s = value * 60
    elif key == "storage.warn_min":
        agent.storage_watch.policy.warn_s = value * 60
    elif key == "device.officer_id":
        agent.commands.set_officer(value)
    elif key == "matters.default" and value and agent.commands.matter is None:
        agent.commands.matter = agent.matters.lookup(value)
