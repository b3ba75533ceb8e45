"""Username/password authentication, the password file's rules, and the client id.

The password lives in a file only the agent's user can read; it never appears in a URL, an
error message, a log line or ``config show``. The broker half runs mosquitto with a
``password_file`` made by ``mosquitto_passwd -b`` and the shipped ACL, on loopback.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_harness import MOSQUITTO_DIR, Broker, back_office, dedupe_seqs, device_key, free_port
from mqtt_harness import sample_birth as birth_for

from agent.cli import main as bodycam
from agent.config import parse_config, read_secret_file
from agent.sync.link import MqttLink
from agent.sync.outbox import Outbox
from hw.errors import ConfigError

pytestmark = pytest.mark.timeout(60)

SECRET = "s3cret-Horse-battery"


def secret_file(tmp_path: Path, text: str = SECRET + "\n", mode: int = 0o600) -> Path:
    path = tmp_path / "mqtt.pass"
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("url", ["mqtts://cam-a:hunter2@broker:8883", "mqtt://:hunter2@broker",
                                 "mqtts://cam-a@broker"])
def test_credentials_in_the_url_are_refused_at_config_check(url: str) -> None:
    """The URL check names both keys to use instead and never repeats the password."""
    with pytest.raises(ConfigError) as err:
        parse_config({"mqtt": {"url": url}}, source="c.toml")
    assert err.value.key == "mqtt.url"
    assert "mqtt.username" in str(err.value) and "mqtt.password_file" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_username_and_password_file_are_known_keys(tmp_path: Path) -> None:
    """A private one-line file is accepted; its content is not part of the configuration."""
    path = secret_file(tmp_path)
    cfg = parse_config({"mqtt": {"username": "cam-a", "password_file": str(path)}})
    assert (cfg.mqtt.username, cfg.mqtt.password_file) == ("cam-a", str(path))
    assert read_secret_file(str(path), key="k") == SECRET
    assert SECRET not in repr(cfg)


def test_config_show_and_check_never_print_the_password(tmp_path: Path) -> None:
    """`bodycam config show` prints the file's path, not what is in it."""
    path = secret_file(tmp_path)
    toml = tmp_path / "c.toml"
    toml.write_text(f'[mqtt]\nusername = "cam-a"\npassword_file = "{path}"\n')
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bodycam(["config", "show", str(toml)]) == 0
        assert bodycam(["config", "check", str(toml)]) == 0
    assert str(path) in out.getvalue() and SECRET not in out.getvalue()


def _chown_nobody(path: Path) -> None:
    os.chown(path, 65534, 65534)


@pytest.mark.parametrize(("arrange", "words"), [
    (lambda p: p.chmod(0o640), "mode 0640"),
    (lambda p: p.chmod(0o604), "mode 0604"),
    (_chown_nobody, "owned by uid 65534"),
    (lambda p: p.write_text(""), "one non-empty line"),
    (lambda p: p.write_text("two\nlines\n"), "one non-empty line"),
    (lambda p: p.write_bytes(b"\xff\xfe"), "not UTF-8"),
    (lambda p: p.write_text("x" * 5000), "larger than"),
    (lambda p: p.unlink(), "cannot open"),
])
def test_an_unsafe_or_broken_password_file_is_a_config_error(tmp_path: Path, arrange: object,
                                                             words: str) -> None:
    """Readable by others, someone else's, empty, multi-line, binary, huge or absent: refused."""
    if "uid" in words and os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    path = secret_file(tmp_path)
    arrange(path)  # type: ignore[operator]
    with pytest.raises(ConfigError) as err:
        parse_config({"mqtt": {"username": "cam-a", "password_file": str(path)}})
    assert err.value.key == "mqtt.password_file"
    assert words in str(err.value) and str(path) in str(err.value)
    assert SECRET not in str(err.value)


def test_a_symlinked_password_file_and_a_password_without_user_are_refused(
        tmp_path: Path) -> None:
    """A symlink could point anywhere; a password alone authenticates nobody."""
    link = tmp_path / "link.pass"
    link.symlink_to(secret_file(tmp_path))
    with pytest.raises(ConfigError, match="cannot open"):
        parse_config({"mqtt": {"username": "cam-a", "password_file": str(link)}})
    with pytest.raises(ConfigError, match=r"needs mqtt\.username"):
        parse_config({"mqtt": {"password_file": str(secret_file(tmp_path))}})


# --- against mosquitto --------------------------------------------------------------------------
@pytest.fixture
def password_broker(tmp_path: Path) -> Iterator[Broker]:
    """mosquitto on loopback: no anonymous clients, a password file, the shipped ACL."""
    if shutil.which("mosquitto") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto not installed")
    work = tmp_path / "pwbroker"
    work.mkdir()
    passwd = work / "passwd"
    passwd.touch(mode=0o600)
    for user in ("cam-a", "backoffice"):
        subprocess.run(["mosquitto_passwd", "-b", str(passwd), user, f"{SECRET}-{user}"],
                       check=True, capture_output=True)
    (work / "bodycam.acl").write_text((MOSQUITTO_DIR / "bodycam.acl").read_text())
    port = free_port()
    conf = work / "mosquitto.conf"
    conf.write_text(f"user root\nper_listener_settings false\nlistener {port} 127.0.0.1\n"
                    f"allow_anonymous false\npassword_file {passwd}\n"
                    f"acl_file {work / 'bodycam.acl'}\nlog_dest file {work / 'mosquitto.log'}\n"
                    "connection_messages true\n")
    broker = Broker(conf, "127.0.0.1", port, work)
    broker.start()
    yield broker
    broker.kill()


def _link(broker: Broker, tmp_path: Path, password: str) -> MqttLink:
    return MqttLink(device_id="cam-a", outbox=Outbox(tmp_path / "o.db"),
                    url=f"mqtt://127.0.0.1:{broker.port}", tls=None, allow_plaintext=True,
                    username="cam-a", password=password, on_command=print,
                    birth=birth_for(device_key()), reconnect=(0.2, 0.5))


def test_the_link_authenticates_with_username_and_password(password_broker: Broker,
                                                           tmp_path: Path) -> None:
    """Right password: delivered under the ACL's %u = username; the client id is the device id."""
    link = _link(password_broker, tmp_path, f"{SECRET}-cam-a")
    with back_office("127.0.0.1", password_broker.port,
                     auth=("backoffice", f"{SECRET}-backoffice")) as bo:
        bo.wait_subscribed()
        seqs = [link.enqueue_event({"type": "warning", "n": n}) for n in range(3)]
        link.start()
        try:
            bo.wait_for(lambda ms: len(dedupe_seqs(ms, "/event")) == 3)
        finally:
            link.stop()
    assert dedupe_seqs(bo.messages, "/event") == seqs
    assert "New client connected from 127.0.0.1" in password_broker.log.read_text()
    assert " as cam-a " in password_broker.log.read_text()  # client id = device id


def test_a_wrong_password_is_refused_and_never_logged(password_broker: Broker, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """The broker's refusal is logged as such; the password appears in no log record."""
    caplog.set_level(logging.DEBUG)
    link = _link(password_broker, tmp_path, "wrong-" + SECRET)
    link.start()
    try:
        deadline = time.monotonic() + 10
        while "refused" not in caplog.text:
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
        assert not link.stats().connected
    finally:
        link.stop()
    assert SECRET not in caplog.text
