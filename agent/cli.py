"""``bodycam`` — the one command of the recorder.

Exit codes: 0 success; 1 a runtime failure (missing device, unusable data directory, no key,
verification failed); 2 a usage or configuration error (the message names the key, the value
and what is allowed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from agent import __version__
from hw.errors import BodycamError, ConfigError, MatterError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (startup time)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

    from agent.command.ctl_client import CtlArgs

# Only what every subcommand needs is imported here: `bodycam ctl` must cost little more than
# the interpreter (scripts/bench_startup.py, tests/test_startup.py); argparse, logging,
# threading, json and the agent itself are imported by the subcommands that use them (a plain
# `bodycam ctl` line is read by the control client without argparse).

__all__ = ["default_data_dir", "main"]

_DELEGATED = ("keys", "verify", "fleet", "bench", "decrypt", "proof", "station")


def default_data_dir() -> Path:
    """``$BODYCAM_DATA_DIR``, else /var/lib/bodycam on a Pi, else ~/.local/state/bodycam."""
    env = os.environ.get("BODYCAM_DATA_DIR")
    if env:
        return Path(env)
    from hw.factory import is_raspberry_pi

    if is_raspberry_pi():
        return Path("/var/lib/bodycam")
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state")) / "bodycam"


def _setup_logging(level: str) -> None:
    import logging

    under_systemd = "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ
    fmt = "%(levelname)s %(name)s: %(message)s" if under_systemd else (
        "%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=fmt,
                        stream=sys.stderr)


def _parser_class() -> type[argparse.ArgumentParser]:
    """An argument parser class (for the parser and its subparsers) whose help is sized
    without ``shutil`` (whose import with ``bz2``/``lzma`` is ~5 ms of every ``bodycam``
    start, ~40 ms on a Pi Zero); the same width rule. Built on first use: argparse itself is
    imported only by the commands that parse with it."""
    import argparse

    class _Formatter(argparse.HelpFormatter):
        def __init__(self, prog: str) -> None:
            try:
                width = int(os.environ.get("COLUMNS", "0")) or os.get_terminal_size().columns
            except (ValueError, OSError):
                width = 80
            super().__init__(prog, width=width - 2)

    class _Parser(argparse.ArgumentParser):
        def __init__(self, **kwargs: Any) -> None:
            kwargs.setdefault("formatter_class", _Formatter)
            super().__init__(**kwargs)

    return _Parser


_PARSED = ("run", "ctl", "config")


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser; with ``command`` (one of :data:`_PARSED`) only that subcommand's
    part is built -- each argparse parser costs ~2 ms of translation lookups, and ``bodycam
    ctl`` should not pay for ten it does not use. Help and errors read the same either way."""
    import argparse

    parser_class = _parser_class()
    p = parser_class(prog="bodycam", description="Body-worn evidence recorder agent.")
    p.add_argument("--version", action="version", version=f"bodycam {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=parser_class)
    if command in _PARSED:
        {"run": _run_parser, "ctl": _ctl_parser, "config": _config_parser}[command](sub)
        return p
    for build in (_run_parser, _ctl_parser, _config_parser):
        build(sub)
    for name, text in (("keys", "device key: init [--rotate]"), ("verify", "verify evidence"),
                       ("fleet", "fleet view: watch"), ("bench", "lab bench"),
                       ("decrypt", "decrypt one segment, also a recovered (truncated) one"),
                       ("proof", "inclusion / consistency proofs of the evidence log"),
                       ("station", "collection station: run | enrol | list | info")):
        sp = sub.add_parser(name, help=text, add_help=False)
        sp.add_argument("rest", nargs=argparse.REMAINDER)
    return p


def _run_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="run the recorder agent")
    run.add_argument("--hw", choices=("auto", "sim", "pi"), default=None,
                     help="hardware set (default: config hardware.kind; auto = pi on a Pi)")
    run.add_argument("--config", type=Path, help="TOML configuration file")
    run.add_argument("--data-dir", type=Path, help="evidence directory")
    run.add_argument("--for", dest="duration", type=float, metavar="SECONDS",
                     help="stop cleanly after this many seconds")
    run.add_argument("--log-level", default="info")
    run.add_argument("--no-status", action="store_true", help="no live status line on a TTY")
    run.add_argument("--with-station", action="store_true",
                     help="simulator: also run a collection station on loopback (data in "
                          "<data-dir>/station) and offload every segment to it")


def _ctl_parser(sub: Any) -> None:
    ctl = sub.add_parser("ctl", help="drive a running agent")
    ctl.add_argument("action", help="press | hold | bookmark | status | start | stop | matter | "
                                    "mark | officer | ack | checkpoint | sim | covert")
    ctl.add_argument("params", nargs="*", help="matter CODE · mark ITEM · officer ID · "
                                               "ack RECEIPT.json… · sim DEVICE VERB [VALUE] · "
                                               "bookmark [LABEL] · covert on|off")
    ctl.add_argument("--data-dir", type=Path)
    ctl.add_argument("--timeout", type=float, default=30.0)


def _config_parser(sub: Any) -> None:
    cfg = sub.add_parser("config", help="configuration tools")
    cfg.add_argument("action", choices=("check", "show"))
    cfg.add_argument("file", type=Path, nargs="?")


def _load(path: Path | None) -> Any:
    from agent.config import load_config

    return load_config(path)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the agent until SIGINT/SIGTERM or ``--for`` elapsed (with ``--with-station``, a
    loopback station beside it, stopped after the agent)."""
    _setup_logging(args.log_level)
    cfg = _load(args.config)
    from hw.factory import resolve_kind

    kind = resolve_kind(args.hw or cfg.hardware.kind)
    data_dir = args.data_dir or default_data_dir()
    station = None
    if args.with_station:
        if kind != "sim":
            print("bodycam run: --with-station is for the simulator (--hw sim); a device "
                  "offloads to the agency's station ([offload] url)", file=sys.stderr)
            return 2
        from agent.offload.loopback import start_loopback

        cfg, station = start_loopback(cfg, data_dir)
    try:
        return _run_agent(args, cfg, kind, data_dir)
    finally:
        if station is not None:
            station.stop()


def _run_agent(args: argparse.Namespace, cfg: Any, kind: str, data_dir: Path) -> int:
    import logging
    import signal
    import threading

    from agent.app import Agent

    agent = Agent(cfg, data_dir=data_dir, hw_kind=kind)
    stop = agent.request_stop
    signal.signal(signal.SIGTERM, lambda *_: stop())
    signal.signal(signal.SIGINT, lambda *_: stop())
    try:
        agent.start()
        logging.getLogger("bodycam").info("recording agent %s running (%s hardware), data in %s",
                                          __version__, kind, agent.data_dir)
        if sys.stderr.isatty() and not args.no_status:
            threading.Thread(target=_status_loop, args=(agent,), daemon=True).start()
        agent.wait(args.duration)
    finally:
        agent.shutdown()
        if sys.stderr.isatty():
            sys.stderr.write("\n")
    return 0


def _status_loop(agent: Any) -> None:
    import time

    from agent.status import status_line

    started: float | None = None
    while True:
        try:
            snap = agent.controller.call("status", timeout=2)
        except BodycamError:
            return
        if snap.get("state") == "recording" and started is None:
            started = time.monotonic()
        elif snap.get("state") != "recording":
            started = None
        sys.stderr.write("\r\033[K" + status_line(snap, started=started))
        sys.stderr.flush()
        time.sleep(1)


def _ctl_args(action: str, params: list[str]) -> tuple[str, dict[str, Any]]:
    if action in ("matter",):
        if len(params) != 1:
            raise ConfigError("usage: bodycam ctl matter CODE")
        return action, {"code": params[0]}
    if action == "mark":
        if len(params) != 1:
            raise ConfigError("usage: bodycam ctl mark ITEM")
        return action, {"item": params[0]}
    if action == "officer":
        return action, {"id": params[0] if params else ""}
    if action == "bookmark":
        return action, {"label": " ".join(params) or "bookmark"}
    if action == "covert":
        if params not in (["on"], ["off"]):
            raise ConfigError("usage: bodycam ctl covert on|off")
        return action, {"on": params[0] == "on"}
    if action == "ack":
        return action, {"receipts": [_receipt_file(Path(p)) for p in params]}
    if action == "sim":
        if len(params) not in (2, 3):
            raise ConfigError("usage: bodycam ctl sim DEVICE VERB [VALUE]")
        out: dict[str, Any] = {"device": params[0], "verb": params[1]}
        if len(params) == 3:
            out["value"] = params[2]
        return action, out
    return action, {}


def _receipt_file(path: Path) -> Any:
    """A station receipt envelope (JSON) from a file; the agent verifies it."""
    try:
        with open(path, "rb") as f:
            raw = f.read(16 * 1024 + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the receipt ({exc.strerror or exc})") from None
    if len(raw) > 16 * 1024:
        raise ConfigError(f"{path}: larger than 16 KiB; not a receipt")
    import json

    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON receipt envelope ({exc})") from None


def cmd_ctl(args: argparse.Namespace | CtlArgs) -> int:
    """Send one request to the running agent; print its JSON answer."""
    import json

    from agent.command.ctl_client import ctl_request

    action, payload = _ctl_args(args.action, list(args.params))
    reply = ctl_request(args.data_dir or default_data_dir(), action, payload, timeout=args.timeout)
    if reply.get("ok"):
        print(json.dumps(reply.get("result", {}), indent=2, ensure_ascii=False, sort_keys=True))
        return 0
    print(f"bodycam ctl {action}: {reply.get('error')}", file=sys.stderr)
    return 1


def cmd_config(args: argparse.Namespace) -> int:
    """Validate (or print) a configuration file."""
    import dataclasses
    import json

    cfg = _load(args.file)
    if args.action == "show":
        print(json.dumps(dataclasses.asdict(cfg), indent=2, ensure_ascii=False))
    else:
        print(f"{args.file}: OK")
    return 0


def _delegate(name: str, rest: list[str]) -> int:
    if name == "keys":
        from agent.evidence.keys_cli import keys_init_main

        if not rest or rest[0] != "init":
            print("usage: bodycam keys init [--data-dir DIR] [--rotate]", file=sys.stderr)
            return 2
        return keys_init_main(rest[1:])
    if name == "verify":
        from agent.evidence.verify_cli import verify_main

        return int(verify_main(rest))
    if name == "proof":
        from agent.evidence.proof import proof_main

        return proof_main(rest)
    if name == "station":
        from agent.station.station_cli import station_main

        return station_main(rest)
    if name == "decrypt":
        from agent.evidence.decrypt import decrypt_main

        return decrypt_main(rest)
    if name == "fleet":
        from agent.station.fleetwatch import fleet_main

        if not rest or rest[0] != "watch":
            print("usage: bodycam fleet watch [--broker URL] ...", file=sys.stderr)
            return 2
        return int(fleet_main(rest))
    from agent.bench.bench_cli import bench_main

    return int(bench_main(rest))


def _dispatch(argv: list[str]) -> int:
    # keys/verify/fleet/bench parse their own options: argparse's REMAINDER would swallow a
    # leading --option as its own, so they are handed over before parsing (the subparsers
    # exist only for `bodycam --help`).
    if argv and argv[0] in _DELEGATED:
        return _delegate(argv[0], argv[1:])
    if argv and argv[0] == "ctl":
        from agent.command.ctl_client import parse_ctl_argv

        plain = parse_ctl_argv(argv[1:])
        if plain is not None:
            return cmd_ctl(plain)
    args = _parser(argv[0] if argv else None).parse_args(argv)
    if args.command == "run":
        return cmd_run(args)
    if args.command == "ctl":
        return cmd_ctl(args)
    return cmd_config(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bodycam`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(argv)
    except (ConfigError, MatterError) as exc:
        print(f"bodycam: configuration error: {exc}", file=sys.stderr)
        return 2
    except BodycamError as exc:
        print(f"bodycam: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
