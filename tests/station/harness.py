"""Bench parts for the station tests: a throw-away agency CA, simulated recorders with real
keys and real evidence logs, and real station processes started from the ``bodycam`` CLI.

Nothing is mocked: the station is ``python -m agent.cli station run`` listening on loopback
with mutual TLS, the client is :class:`agent.station.api_client.StationClient`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from agent.evidence.key_rotation import rotate_and_log
from agent.evidence.keys import DeviceKey
from agent.evidence.log import EvidenceLog, origin_for
from agent.evidence.manifest import FORMAT, sign_manifest
from agent.station.api_client import StationClient

REPO = Path(__file__).resolve().parents[2]
MAKE_CA = REPO / "scripts" / "make-test-ca.sh"


def make_pki(out: Path, devices: list[str]) -> Path:
    """The agency CA, the station's server certificate and one client certificate per id."""
    subprocess.run(["bash", str(MAKE_CA), str(out), *devices], check=True, capture_output=True)
    return out


@dataclass
class Segment:
    """One sealed segment as a recorder holds it."""

    media: Path
    manifest: bytes
    entry: bytes
    index: int
    device_seq: int
    cipher: bytes


class SimRecorder:
    """A recorder's evidence: a real Ed25519 key and a real Merkle log, media bytes as given."""

    def __init__(self, root: Path, device_id: str, pki: Path, *,
                 key: DeviceKey | None = None) -> None:
        self.device_id = device_id
        self.root = root
        self.pki = pki
        self.key = key or DeviceKey.generate(root / "keys" / "device.key")
        self.log = EvidenceLog(root / "log", self.key, origin_for(device_id))
        self.recording_id = uuid.uuid4().hex
        self.next_seq = 0

    def close(self) -> None:
        self.log.close()

    def enrolment(self) -> dict[str, Any]:
        """The record bodycam-provision writes, with a CSR from the device's TLS key."""
        tls_key = serialization.load_pem_private_key((self.pki / f"{self.device_id}.key")
                                                     .read_bytes(), password=None)
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.device_id)]))
               .sign(tls_key, hashes.SHA256()))  # type: ignore[arg-type]
        return {"type": "bodycam-enrolment-request/v1", "device_id": self.device_id,
                "public_key_ed25519_b64": self.key.public_b64,
                "public_key_pem": self.key.public_pem.decode(),
                "fingerprint_sha256": self.key.fingerprint,
                "mqtt_csr_pem": csr.public_bytes(serialization.Encoding.PEM).decode(),
                "created_utc": "2026-11-30T00:00:00Z"}

    def write_enrolment(self, path: Path) -> Path:
        path.write_text(json.dumps(self.enrolment(), indent=2))
        return path

    def seal(self, cipher: bytes, *, key: DeviceKey | None = None, name: str | None = None,
             device_seq: int | None = None) -> Segment:
        """A segment: media file, signed manifest, log entry (appended, checkpoint signed)."""
        seq = self.next_seq if device_seq is None else device_seq
        self.next_seq = max(self.next_seq, seq + 1)
        rid8 = self.recording_id[:8]
        rec_dir = f"20261130T000000Z_{self.device_id}_{rid8}"
        name = name or f"{self.device_id}_20261130T000000.000Z_{rid8}_{seq:05d}.mp4.age"
        media = self.root / "recordings" / rec_dir / name
        media.parent.mkdir(parents=True, exist_ok=True)
        media.write_bytes(cipher)
        sha = hashlib.sha256(cipher).hexdigest()
        manifest = {
            "format": FORMAT, "device_id": self.device_id, "recording_id": self.recording_id,
            "seq": seq, "device_seq": seq, "officer_id": None,
            "start": {"utc": "2026-11-30T00:00:00.000000Z", "mono_us": seq * 1000},
            "end": {"utc": "2026-11-30T00:00:01.000000Z", "mono_us": seq * 1000 + 1000},
            "clock": {"source": "gps", "est_error_ms": 1}, "gps": {}, "media": {},
            "matter": None, "prev_leaf": None, "flags": [], "bookmarks": [],
            "file": {"name": name, "encrypted": True, "recipients": [], "plain_sha256": None,
                     "plain_bytes": None, "cipher_sha256": sha, "cipher_bytes": len(cipher)}}
        signed = sign_manifest(manifest, key or self.key)
        entry = {"kind": "segment", "device_seq": seq, "recording_id": self.recording_id,
                 "seq": seq, "path": f"recordings/{rec_dir}/{name}",
                 "manifest_sha256": signed.sha256, "cipher_sha256": sha}
        result = self.log.append(entry)
        return Segment(media, signed.envelope(), self.log.entry(result.index), result.index, seq,
                       cipher)

    def rotate(self) -> bytes:
        """Rotate the device key as the agent does (the old key endorses the new one in a
        logged ``key_rotation`` entry); the entry's exact bytes. Later seals sign with the new
        key, and so does the log's checkpoint."""
        self.key, index = rotate_and_log(self.log, self.root / "keys" / "device.key",
                                         utc="2026-11-30T08:00:00.000000Z")
        return self.log.entry(index)

    def client(self, url: str, *, device: str | None = None, **kw: Any) -> StationClient:
        """A client speaking with this device's TLS identity (or another device's)."""
        who = device or self.device_id
        return StationClient(url, cafile=str(self.pki / "ca.crt"),
                             certfile=str(self.pki / f"{who}.crt"),
                             keyfile=str(self.pki / f"{who}.key"), **kw)


def station_config(path: Path, pki: Path, *, database: str = "", store: Path | None = None,
                   **limits: Any) -> Path:
    """A station TOML: mutual TLS with the test CA on a free loopback port."""
    lines = ["[station]", 'listen = "127.0.0.1"', "port = 0", f'database = "{database}"']
    if store is not None:
        lines.append(f'store = "{store}"')
    lines += ["[tls]", f'cafile = "{pki / "ca.crt"}"', f'certfile = "{pki / "server.crt"}"',
              f'keyfile = "{pki / "server.key"}"', "[limits]"]
    lines += [f"{k} = {v}" for k, v in limits.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def bodycam(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``bodycam`` CLI in a child process."""
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, check=check, cwd=REPO, timeout=60)


class StationProcess:
    """``bodycam station run`` in a child process; ``url`` once it listens."""

    def __init__(self, config: Path, data_dir: Path) -> None:
        self.config, self.data_dir = config, data_dir
        self.log_path = data_dir.parent / f"{data_dir.name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, timeout: float = 30.0) -> StationProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        err = open(self.log_path, "ab")  # noqa: SIM115 -- the child owns it for its lifetime
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "station", "run", "--config", str(self.config),
             "--data-dir", str(self.data_dir)], stdout=subprocess.PIPE, stderr=err, cwd=REPO)
        err.close()
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        buf = b""
        while b"listening on " not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise RuntimeError(f"station did not start: {self.stderr()}")
            if sel.select(left):
                buf += os.read(self.proc.stdout.fileno(), 4096)
        sel.close()
        self.url = buf.split(b"listening on ", 1)[1].split(b"\n", 1)[0].decode().strip()
        return self

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int:
        """SIGTERM and wait: the graceful path."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=30)
        if self.proc.stdout:
            self.proc.stdout.close()
        return rc

    def kill(self) -> None:
        """SIGKILL: the crash."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)
        if self.proc.stdout:
            self.proc.stdout.close()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def tls_socket(url: str, pki: Path, device: str | None) -> Any:
    """A raw TLS socket to the station with a device's client certificate (or none)."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if device:
        ctx.load_cert_chain(str(pki / f"{device}.crt"), str(pki / f"{device}.key"))
    raw = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname=parts.hostname)


def index_rows(data_dir: Path, table: str) -> list[tuple[Any, ...]]:
    """Rows of a station's SQLite index table (read-only look, as an auditor would)."""
    import sqlite3

    con = sqlite3.connect(f"file:{data_dir / 'index.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        con.close()
