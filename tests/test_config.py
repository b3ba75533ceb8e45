"""The configuration schema: shipped files are valid, bad files are named precisely."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.config import Config, load_config, parse_config
from agent.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[1] / "config"


def test_default_toml_documents_exactly_the_built_in_defaults():
    """config/default.toml lists every key with the value the code uses when it is absent."""
    assert load_config(CONFIG / "default.toml") == Config()
    text = (CONFIG / "default.toml").read_text()
    for section in dataclasses.fields(Config):
        for key in dataclasses.fields(getattr(Config(), section.name)):
            assert f"\n{key.name} = " in text, f"{section.name}.{key.name} missing"


@pytest.mark.parametrize("path", sorted((CONFIG / "profiles").glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_profile_is_valid(path: Path):
    """Each profile file loads under the schema."""
    assert isinstance(load_config(path), Config)


@pytest.mark.parametrize(("raw", "key", "words"), [
    ({"video": {"fps": 0}}, "video.fps", "below the minimum 1"),
    ({"video": {"fps": "30"}}, "video.fps", "not an integer"),
    ({"recording": {"prerecord_s": 121}}, "recording.prerecord_s", "above the maximum 120"),
    ({"device": {"profile": "drone"}}, "device.profile", "not one of"),
    ({"device": {"id": "bad id!"}}, "device.id", "does not match"),
    ({"audio": {"enabled": "yes"}}, "audio.enabled", "not true or false"),
    ({"videoo": {}}, "videoo", "unknown section"),
    ({"video": {"widht": 640}}, "video.widht", "unknown key"),
    ({"evidence": {"recipients": ["age1nope"]}}, "evidence.recipients[0]", "not an age"),
    ({"power": {"warn_min": 2, "critical_min": 3}}, "power.critical_min", "below power.warn_min"),
    ({"video": {"width": 641}}, "video", "even"),
    ({"hardware": {"kind": "pi"}, "evidence": {"encrypt": True}}, "evidence.recipients",
     "no agency recipient"),
])
def test_bad_values_name_key_value_and_rule(raw, key, words):
    """Every rejection names the key, and says what is allowed."""
    with pytest.raises(ConfigError) as err:
        parse_config(raw, source="t.toml")
    assert err.value.key == key
    assert words in str(err.value)
    assert str(err.value).startswith("t.toml: ")


def test_unreadable_and_malformed_files(tmp_path: Path):
    """Missing file, broken TOML and non-UTF-8 are configuration errors with the file name."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[video\nwidth = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    bad.write_bytes(b"\xff\xfe[video]")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)


def test_replace_validates_like_the_file():
    """A remote change goes through the same rules as the file."""
    cfg = Config().replace("recording.reminder_s", 30)
    assert cfg.recording.reminder_s == 30
    with pytest.raises(ConfigError):
        Config().replace("recording.prerecord_s", 500)
