"""``bodycam station user add|passwd|role|list``: console accounts, managed on the station.

User management is deliberately not a web page: whoever can run this on the station (or
against its database) is the agency admin of DESIGN §7. Passwords come from a prompt, or
with ``--password-stdin`` from the first line of standard input (scripts), never from the
command line where ``ps`` would show them. Every change is recorded in the audit table.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from hw.errors import ConfigError

from ..service import StationService, utc_now
from .accounts import ROLES, Accounts

__all__ = ["add_user_parser", "user_main"]


def add_user_parser(sub: Any) -> None:
    """Add ``user`` and its verbs to the station's subcommands."""
    p = sub.add_parser("user", help="console users: add, passwd, role, list")
    verbs = p.add_subparsers(dest="verb", required=True)
    for verb, text in (("add", "create a user"), ("passwd", "set a user's password"),
                       ("role", "change a user's role"), ("list", "list users")):
        vp = verbs.add_parser(verb, help=text)
        vp.add_argument("--config", type=Path, help="station TOML configuration")
        vp.add_argument("--data-dir", type=Path, help="station data directory")
        if verb != "list":
            vp.add_argument("username")
        if verb in ("add", "role"):
            vp.add_argument("role", choices=ROLES)
        if verb in ("add", "passwd"):
            vp.add_argument("--password-stdin", action="store_true",
                            help="read the password from the first line of stdin")
        if verb == "list":
            vp.add_argument("--json", action="store_true")


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("new password: ")
    if first != getpass.getpass("again: "):
        raise ConfigError("the two passwords differ", key="password")
    return first


def user_main(svc: StationService, args: argparse.Namespace) -> int:
    """Run one ``user`` verb against the station's index."""
    accounts = Accounts(svc.index, session_s=svc.cfg.console.session_s)
    verb = args.verb
    if verb == "list":
        users = accounts.list()
        if args.json:
            print(json.dumps([{"username": u, "role": r, "created_utc": c}
                              for u, r, c in users], indent=2))
        else:
            for u, r, c in users:
                print(f"{u:<32} {r:<10} {c}")
        return 0
    if verb == "add":
        accounts.add(args.username, _password(args.password_stdin), args.role)
        detail = f"role {args.role}"
    elif verb == "passwd":
        accounts.passwd(args.username, _password(args.password_stdin))
        detail = "password changed; sessions ended"
    else:
        accounts.set_role(args.username, args.role)
        detail = f"role {args.role}; sessions ended"
    svc.index.audit(utc_now(), "station-cli", f"user-{verb}", address="local", device_id=None,
                    detail=f"{args.username}: {detail}", outcome="ok")
    print(f"{args.username}: {detail}")
    return 0
