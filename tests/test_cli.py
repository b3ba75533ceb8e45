"""The ``bodycam`` command: exit codes and messages a person can act on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent import __version__


def bodycam(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, check=False,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def test_version():
    """--version prints the package version."""
    res = bodycam("--version")
    assert res.returncode == 0 and __version__ in res.stdout


def test_bad_config_exits_2_naming_the_key(tmp_path: Path):
    """A bad value stops the agent before anything is written, naming key and value."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("[video]\nfps = 500\n")
    data = tmp_path / "data"
    res = bodycam("run", "--hw", "sim", "--config", str(cfg), "--data-dir", str(data))
    assert res.returncode == 2
    assert "video.fps" in res.stderr and "500" in res.stderr and "maximum 60" in res.stderr
    assert not data.exists(), "nothing may be written for a bad configuration"
    assert bodycam("config", "check", str(cfg)).returncode == 2


def test_unknown_matter_in_config_exits_2(tmp_path: Path):
    """An unknown quick-list matter code is a configuration error naming the code."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[matters]\nquick_list = ["NOPE"]\n[video]\nwidth = 320\nheight = 240\n')
    res = bodycam("run", "--hw", "sim", "--config", str(cfg), "--data-dir", str(tmp_path / "d"))
    assert res.returncode == 2 and "NOPE" in res.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; needs an ordinary user")
def test_unwritable_data_dir_exits_1(tmp_path: Path):
    """A data directory the agent cannot write is refused with its path."""
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    res = bodycam("run", "--hw", "sim", "--data-dir", str(ro / "data"))
    assert res.returncode == 1 and str(ro) in res.stderr


def test_data_dir_that_is_a_file_exits_1(tmp_path: Path):
    """A data directory path that is a file is refused with its path (works as root too)."""
    f = tmp_path / "file"
    f.write_text("x")
    res = bodycam("run", "--hw", "sim", "--data-dir", str(f / "data"))
    assert res.returncode == 1 and str(f) in res.stderr


def test_ctl_without_agent_says_so(tmp_path: Path):
    """ctl against a data dir with no running agent exits 1 with a clear message."""
    res = bodycam("ctl", "status", "--data-dir", str(tmp_path))
    assert res.returncode == 1 and "no agent is running" in res.stderr


def test_missing_pi_hardware_is_a_clear_error(tmp_path: Path):
    """--hw pi off a Pi fails loudly naming the missing device; never falls back to sim."""
    cfg = tmp_path / "pi.toml"
    cfg.write_text("[evidence]\nencrypt = false\n")
    res = bodycam("run", "--hw", "pi", "--config", str(cfg), "--data-dir", str(tmp_path / "d"),
                  "--for", "1")
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    assert res.stderr.startswith("bodycam: ")
    assert any(w in res.stderr for w in ("GPIO:", "camera", "GPS:", "battery:"))


def test_run_for_seconds_then_ctl_status(tmp_path: Path):
    """`run --hw sim --for N` serves ctl status while it runs and exits 0 by itself -- with a
    data directory whose control socket path is longer than a Unix socket address holds."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("[video]\nwidth = 320\nheight = 240\n[gps]\nsource = \"none\"\n")
    data = tmp_path / ("evidence-" * 7) / "data"
    assert len(str(data / "ctl.sock")) > 108
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "run", "--hw", "sim", "--config",
                             str(cfg), "--data-dir", str(data), "--for", "6"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        import time

        for _ in range(100):
            res = bodycam("ctl", "status", "--data-dir", str(data))
            if res.returncode == 0:
                break
            time.sleep(0.1)
        assert '"state": "standby"' in res.stdout
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert not (data / "ctl.sock").exists()


def test_delegated_commands_take_their_own_options(tmp_path: Path):
    """`bodycam verify --json` and `bodycam bench --help` reach their own parsers."""
    res = bodycam("verify", "--json", str(tmp_path / "nothing"))
    assert res.returncode in (1, 2) and "unrecognized arguments" not in res.stderr
    res = bodycam("bench", "--help")
    assert res.returncode == 0 and "--minutes" in res.stdout


def _ctl_as_stranger(data: Path) -> tuple[int, str]:
    """``bodycam ctl status`` run by a user the socket does not admit: as root, a forked child
    that drops to ``nobody`` (the interpreter is already loaded); otherwise the socket's own
    owner facing mode 0000."""
    import agent.cli
    import agent.command.ctl_server

    sock = agent.command.ctl_server.socket_path(data)
    if os.geteuid() != 0:
        sock.chmod(0)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code and the pipe
        code = 99
        try:
            os.close(read)
            sys.stderr = os.fdopen(write, "w")
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            code = agent.cli.main(["ctl", "status", "--data-dir", str(data)])
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as f:
        err = f.read()
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err


def test_ctl_from_a_user_the_socket_refuses_gets_a_message_not_a_traceback():
    """The control socket is 0600: another user's ctl exits 1 saying who may use it."""
    import shutil
    import socket
    import tempfile

    data = Path(tempfile.mkdtemp(prefix="bodycam-ctl-"))  # traversable: only the socket refuses
    data.chmod(0o755)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        listener.bind(str(data / "ctl.sock"))
    finally:
        os.umask(old)
    listener.listen(1)
    try:
        code, err = _ctl_as_stranger(data)
    finally:
        listener.close()
        shutil.rmtree(data)
    assert code == 1, err
    assert "Traceback" not in err and "permission denied" in err
    assert "may drive the recorder" in err and "sudo" in err


def test_ctl_ack_needs_a_readable_receipt_file(tmp_path: Path):
    """`ctl ack FILE` with a missing or non-JSON file is a usage error (exit 2) naming it."""
    res = bodycam("ctl", "ack", str(tmp_path / "absent.json"), "--data-dir", str(tmp_path))
    assert res.returncode == 2 and "absent.json" in res.stderr and "cannot read" in res.stderr
    junk = tmp_path / "junk.json"
    junk.write_text("{receipt")
    res = bodycam("ctl", "ack", str(junk), "--data-dir", str(tmp_path))
    assert res.returncode == 2 and "not a JSON receipt" in res.stderr


_CTL_LINES = [
    ["status"], ["status", "--data-dir", "/d"], ["--data-dir", "/d", "status"],
    ["--data-dir=/d", "status", "--timeout=2.5"], ["sim", "camera", "wedge", "--timeout", "5"],
    ["bookmark", "a", "b c"], ["matter", "X1", "--data-dir", "", "--timeout", "1e1"],
    ["--timeout", "3", "--timeout", "4", "officer", "007"],
    # not the plain form: argparse reads these (help, errors, its own quirks)
    [], ["--help"], ["status", "-h"], ["status", "--data", "/d"], ["status", "--timeout"],
    ["status", "--timeout", "soon"], ["status", "--timeout", "-1"], ["--data-dir", "/d"],
    ["status", "--data-dir", "/d", "extra"], ["status", "--", "x"], ["mark", "-x"],
]


@pytest.mark.parametrize("line", _CTL_LINES)
def test_ctl_line_read_without_argparse_means_what_argparse_reads(line: list[str]):
    """`bodycam ctl` reads its plain command line itself (argparse is most of its start-up
    beyond the interpreter); whatever it accepts, argparse reads the same, and anything else
    is left to argparse, so help and errors do not change."""
    import agent.cli
    from agent.command.ctl_client import parse_ctl_argv

    plain = parse_ctl_argv(line)
    try:
        ref = agent.cli._parser("ctl").parse_args(["ctl", *line])
    except SystemExit:
        ref = None
    if plain is None:
        assert line in _CTL_LINES[_CTL_LINES.index([]):], "a plain ctl line was left to argparse"
        return
    assert ref is not None, f"{line} accepted without argparse, refused by it"
    assert (plain.action, plain.params, plain.data_dir, plain.timeout) == (
        ref.action, ref.params, ref.data_dir, ref.timeout)
