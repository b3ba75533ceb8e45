"""The configuration schema: shipped files are valid, bad files are named precisely."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest

from agent.config import Config, load_config, parse_config
from hw.errors import ConfigError

CONFIG = Path(__file__).resolve().parents[1] / "config"


def test_default_toml_documents_exactly_the_built_in_defaults():
    """config/default.toml lists every key with the value the code uses when it is absent."""
    assert load_config(CONFIG / "default.toml") == Config()
    text = (CONFIG / "default.toml").read_text()
    hints = typing.get_type_hints(Config)
    for section in dataclasses.fields(Config):
        if typing.get_origin(hints[section.name]) is list:  # [[triggers]]: a commented example
            (item,) = typing.get_args(hints[section.name])
            for key in dataclasses.fields(item):
                assert f"\n# {key.name} = " in text, f"[[{section.name}]] {key.name} missing"
            continue
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


@pytest.mark.parametrize("device_id", [
    "BC-0001", "cam.a-1", "A" * 64, "A" * 65, "BC_0001", "-BC", ".BC", "a b", "a/b", "a+b",
    "BC-1\n", "", "é1"])
def test_device_id_rule_is_the_evidence_stores(device_id: str, tmp_path: Path):
    """config check accepts exactly the ids the evidence store (and its log origin) accept, so
    an id `bodycam run` would refuse after making keys is refused at config check."""
    from agent.evidence.keys import DeviceKey
    from agent.evidence.log import origin_for
    from agent.evidence.store import EvidenceStore
    from hw.errors import EvidenceError

    try:
        parse_config({"device": {"id": device_id}})
        config_ok = True
    except ConfigError:
        config_ok = False
    key = DeviceKey.generate(tmp_path / "k" / "device.key")
    try:
        EvidenceStore(tmp_path / "d", key=key, recipients=[], encrypt=False,
                      device_id=device_id).close()
        origin_for(device_id)
        store_ok = True
    except (EvidenceError, ValueError):
        store_ok = False
    assert config_ok == store_ok


def test_config_check_refuses_a_bad_device_id_before_any_key_exists(tmp_path: Path):
    """`bodycam run` with an id the store rejects exits 2 without generating a key."""
    import subprocess
    import sys

    cfg = tmp_path / "c.toml"
    cfg.write_text('[device]\nid = "BC_0001"\n')
    data = tmp_path / "data"
    res = subprocess.run([sys.executable, "-m", "agent.cli", "run", "--hw", "sim", "--config",
                          str(cfg), "--data-dir", str(data)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 2 and "device.id" in res.stderr
    assert not data.exists()


def test_station_keys_are_base64_or_pem_files(tmp_path: Path):
    """[offload] station_keys takes raw base64 keys and absolute PEM paths; anything else is
    an error naming the entry."""
    from agent.config import station_public_keys
    from agent.evidence.keys import DeviceKey

    key = DeviceKey.generate(tmp_path / "station.key")
    pem = tmp_path / "station.pem"
    pem.write_bytes(key.public_pem)
    cfg = parse_config({"offload": {"station_keys": [key.public_b64, str(pem)]}})
    assert station_public_keys(cfg.offload) == [key.public_bytes, key.public_bytes]
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    for bad, words in (("station.pem", "absolute path"), (str(tmp_path / "nope.pem"), "cannot read"),
                       (str(junk), "not an Ed25519 public key"), ("not a key", "neither")):
        with pytest.raises(ConfigError) as err:
            parse_config({"offload": {"station_keys": [bad]}}, source="t.toml")
        assert err.value.key == "offload.station_keys[0]" and words in str(err.value)


def test_a_long_preroll_is_refused_on_the_zero_2w_profile(tmp_path: Path):
    """The Zero 2 W profile (512 MB) accepts its 30 s pre-roll and refuses 120 s at config
    check, naming the key; without a declared RAM size nothing is refused."""
    zero = (CONFIG / "profiles" / "reference-zero2w.toml").read_text()
    assert load_config(CONFIG / "profiles" / "reference-zero2w.toml").recording.prerecord_s == 30
    long = tmp_path / "zero-120.toml"
    long.write_text(zero.replace("prerecord_s = 30", "prerecord_s = 120"))
    with pytest.raises(ConfigError, match=r"recording\.prerecord_s.*memory_mb = 512"):
        load_config(long)
    unchecked = tmp_path / "zero-120-unchecked.toml"
    unchecked.write_text(long.read_text().replace("memory_mb = 512", "memory_mb = 0"))
    assert load_config(unchecked).recording.prerecord_s == 120
