"""``[[triggers]]`` and ``[night]`` are validated like the rest of the configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent.config import parse_config
from hw.errors import ConfigError

HOLSTER = {"name": "holster", "pin": 5, "pull": "up", "active_high": False, "debounce_ms": 50,
           "action": "start"}


def test_a_trigger_table_loads_with_its_defaults():
    """A minimal trigger needs a name and a pin; the rest has documented defaults."""
    cfg = parse_config({"triggers": [{"name": "lightbar", "pin": 6}, HOLSTER]})
    assert [t.name for t in cfg.triggers] == ["lightbar", "holster"]
    assert cfg.triggers[0].action == "start" and cfg.triggers[0].debounce_ms == 50
    assert cfg.replace("video.fps", 25).triggers == cfg.triggers  # survives a live change


@pytest.mark.parametrize(("raw", "key", "words"), [
    ({"triggers": [{**HOLSTER, "pin": 28}]}, "triggers[0].pin", "above the maximum 27"),
    ({"triggers": [{**HOLSTER, "pin": 17}]}, "triggers[0].pin", "already used by gpio.button"),
    ({"triggers": [{"name": "holster"}]}, "triggers[0].pin", "needs its input pin"),
    ({"triggers": [HOLSTER, {**HOLSTER, "name": "door"}]}, "triggers[1].pin",
     "already used by triggers[0].pin"),
    ({"triggers": [HOLSTER, {**HOLSTER, "pin": 6}]}, "triggers[1].name", "another trigger"),
    ({"triggers": [{**HOLSTER, "pull": "sideways"}]}, "triggers[0].pull", "not one of"),
    ({"triggers": [{**HOLSTER, "action": "stop"}]}, "triggers[0].action", "not one of"),
    ({"triggers": [{**HOLSTER, "active_high": "yes"}]}, "triggers[0].active_high",
     "not true or false"),
    ({"triggers": [{**HOLSTER, "colour": 1}]}, "triggers[0].colour", "unknown key"),
    ({"triggers": [{**HOLSTER, "name": "Holster!"}]}, "triggers[0].name", "does not match"),
    ({"triggers": [{**HOLSTER, "action": "start_matter"}]}, "triggers[0].matter",
     "needs a matter"),
    ({"triggers": [{**HOLSTER, "matter": "XCJC"}]}, "triggers[0].matter", "only used with"),
    ({"triggers": {"name": "holster"}}, "triggers", "array of tables"),
    ({"triggers": ["holster"]}, "triggers[0]", "must be a table"),
    ({"night": {"on_lux": 30, "off_lux": 20}}, "night.on_lux", "below night.off_lux"),
    ({"night": {"ir_led_pin": 24}}, "night.ir_led_pin", "already used by gpio.buzzer"),
    ({"night": {"ir_led_pin": 5}, "triggers": [HOLSTER]}, "triggers[0].pin",
     "already used by night.ir_led_pin"),
])
def test_bad_trigger_and_night_settings_name_the_key(raw, key, words):
    """Each rejection names the exact key (``triggers[0].pin``) and the rule."""
    with pytest.raises(ConfigError) as err:
        parse_config(raw, source="t.toml")
    assert err.value.key == key
    assert words in str(err.value)


def test_config_check_exits_2_on_a_clashing_trigger_pin(tmp_path: Path):
    """``bodycam config check`` refuses a trigger on the button's pin with exit code 2."""
    path = tmp_path / "c.toml"
    path.write_text('[[triggers]]\nname = "holster"\npin = 17\n')
    res = subprocess.run([sys.executable, "-m", "agent.cli", "config", "check", str(path)],
                         check=False, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2
    assert "triggers[0].pin" in res.stderr and "gpio.button" in res.stderr
