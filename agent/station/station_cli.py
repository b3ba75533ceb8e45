"""``bodycam station run|enrol|list|info|keys``: the collection station's commands.

Exit codes follow ``bodycam``'s: 0 success, 1 a runtime failure, 2 a usage or configuration
error (raised as :class:`ConfigError` and reported by :func:`agent.cli.main`).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.evidence.checkpoint import parse_signed_checkpoint
from agent.witness import VerifierKey
from hw.errors import ConfigError, VerificationError

from .custodycheck import add_check_log_parser, check_log_main
from .custodywitness import custody_witness_status
from .deskcli import DESK_ACTIONS, add_desk_commands, desk_main
from .devicekeys_cli import add_keys_parser, keys_main
from .enrolment import read_enrolment
from .service import StationService, utc_now
from .station_config import StationConfig, load_station_config
from .stationlog import station_log_origin
from .witness_endpoint import WITNESS_PREFIX, load_witness_cosigner

__all__ = ["default_station_dir", "station_main"]

USAGE = ("usage: bodycam station run|enrol|list|info|keys|user|check-log [--config FILE] "
         "[--data-dir DIR] …")


def default_station_dir() -> Path:
    """``$BODYCAM_STATION_DIR``, else /var/lib/bodycam-station."""
    return Path(os.environ.get("BODYCAM_STATION_DIR", "/var/lib/bodycam-station"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bodycam station", description="Collection station.")
    sub = p.add_subparsers(dest="action", required=True)
    for name, text in (("run", "serve devices over HTTPS (mutual TLS)"),
                       ("enrol", "register devices from their enrolment records"),
                       ("list", "what the station holds"),
                       ("info", "station id, URL, receipt key, CA fingerprint")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--config", type=Path, help="station TOML configuration")
        sp.add_argument("--data-dir", type=Path, help="station data directory")
        if name == "enrol":
            sp.add_argument("records", type=Path, nargs="+", help="bodycam-enrol.json files")
        if name in ("list", "info"):
            sp.add_argument("--json", action="store_true", help="machine-readable output")
        if name == "list":
            sp.add_argument("--check", action="store_true",
                            help="re-hash every stored file against the index (slow)")
        if name == "run":
            sp.add_argument("--log-level", default="info")
    from .console.usercli import add_user_parser  # console accounts (docs/CONSOLE.md)

    add_user_parser(sub)
    add_desk_commands(sub)
    add_keys_parser(sub)
    add_check_log_parser(sub)
    return p


def station_main(argv: Sequence[str]) -> int:
    """Entry point of ``bodycam station``."""
    args = _parser().parse_args(list(argv))
    if args.action == "check-log":  # offline: a copy of the log, no station opened
        return check_log_main(args)
    cfg = load_station_config(args.config)
    data_dir = args.data_dir or default_station_dir()
    if args.action == "run":
        return _run(cfg, data_dir, args)
    svc = StationService.open(cfg, data_dir)
    try:
        if args.action == "user":
            from .console.usercli import user_main

            return user_main(svc, args)
        if args.action in DESK_ACTIONS:
            return desk_main(svc, args)
        if args.action == "enrol":
            return _enrol(svc, args.records)
        if args.action == "keys":
            return keys_main(svc, args)
        return _info(svc, args.json)
    finally:
        svc.close()


def _run(cfg: StationConfig, data_dir: Path, args: argparse.Namespace) -> int:
    from .server import serve

    if args.config is None:
        raise ConfigError("station run needs --config: the TLS files (or the lab switch "
                          "[station] insecure_http = true) are not optional")
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    svc = StationService.open(cfg, data_dir)

    def ready(url: str) -> None:
        print(f"bodycam station: listening on {url}", flush=True)

    try:
        svc.start_witnessing()  # the custody log's witnesses (agent/station/custodywitness.py)
        asyncio.run(serve(svc, on_ready=ready))
    finally:
        svc.close()
    return 0


def _enrol(svc: StationService, records: list[Path]) -> int:
    status = 0
    for path in records:
        e = read_enrolment(path)
        try:
            added = svc.index.enrol(e, utc_now())
        except ValueError as exc:
            print(f"bodycam station enrol: {path}: {exc}", file=sys.stderr)
            status = 1
            continue
        fp = hashlib.sha256(e.public_key).hexdigest()
        if added:
            svc.index.event(utc_now(), e.device_id, "enrolled", f"evidence key {fp}")
        print(f"{e.device_id}: {'enrolled' if added else 'already enrolled'} (evidence key "
              f"{fp[:16]}…{', TLS key pinned' if e.tls_key_sha256 else ''})")
    return status


def _ca_fingerprint(cafile: str) -> str | None:
    if not cafile:
        return None
    try:
        pem = Path(cafile).read_text(encoding="ascii")
        der = ssl.PEM_cert_to_DER_cert(pem[:pem.index("-----END CERTIFICATE-----") + 25])
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the CA certificate ({exc})", key="tls.cafile") from None
    return hashlib.sha256(der).hexdigest()


def _custody_log(svc: StationService) -> dict[str, Any]:
    """The custody log's origin and the verifier key a witness operator registers for it, its
    size, and each configured witness's state (docs/EVIDENCE-DESK.md)."""
    origin = station_log_origin(svc.station_id)
    status = custody_witness_status(svc.data_dir, svc.cfg.witnesses)
    try:
        size: int | None = parse_signed_checkpoint(
            (svc.custody_log.directory / "checkpoint").read_bytes()).checkpoint.size
    except (OSError, VerificationError):
        size = None
    return {"origin": origin, "vkey": str(VerifierKey.for_ed25519(origin, svc.key.public_bytes)),
            "size": size, "witnesses": status}


def _info(svc: StationService, as_json: bool) -> int:
    st = svc.cfg.station
    url = st.url or f"{'http' if st.insecure_http else 'https'}://{st.listen}:{st.port}"
    custody = _custody_log(svc)
    doc: dict[str, Any] = {"station_id": svc.station_id, "url": url, "receipt_key": svc.receipt_key,
           "receipt_key_fingerprint": svc.key.fingerprint,
           "tls_ca_sha256": _ca_fingerprint(svc.cfg.tls.cafile),
           "store": str(svc.store.root), "index": "postgresql" if st.database else "sqlite",
           "witness_vkey": str(load_witness_cosigner(svc.data_dir, svc.station_id).vkey),
           "witness_url": url.rstrip("/") + WITNESS_PREFIX,
           "custody_log": custody}
    if svc.cfg.console.enabled:  # the browsers' listener (docs/CONSOLE.md)
        host = urlsplit(url).hostname or st.listen
        doc["console_url"] = (f"{'http' if st.insecure_http else 'https'}://{host}:"
                              f"{svc.cfg.console.port}/console/")
    if as_json:
        print(json.dumps(doc, indent=2))
        return 0
    for k, v in doc.items():
        if k != "custody_log":
            print(f"{k}: {v}")
    print(f"custody_log: {custody['origin']}, {custody['size'] or 0} entries, "
          f"vkey {custody['vkey']}")
    for w in custody["witnesses"]:
        error = f"; failing: {w['last_error']}" if w["failures"] else ""
        print(f"custody_witness {w['name']}: cosigned {w['cosigned_size'] or 0} "
              f"({w['behind']} behind){error}")
    return 0
