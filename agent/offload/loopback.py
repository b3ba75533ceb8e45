"""A collection station on loopback for the simulator: the whole chain on one machine.

``bodycam run --hw sim --with-station`` uses this. Under ``<data dir>/station`` it makes, at
run time and only if absent, a throw-away agency CA with the station's server certificate and
the device's client certificate (``pki/``, keys 0600; nothing is ever committed), writes the
station configuration, starts ``bodycam station run`` as a **child process**, enrols the
device from an enrolment record like the one ``bodycam-provision`` writes, and returns the
``[offload]`` settings that point the recorder at it.

Why a child process and not a thread: the station is an asyncio server that hashes, fsyncs and
signs; in the recorder's process it would compete for the GIL with the controller thread, and
a bug or a kill there would take the recording down with it. As a process it is what an agency
runs (the same command), it can be killed and restarted on its own, and the recorder's CPU
figures stay the recorder's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.config import Config, OffloadConfig, WitnessConfig
from agent.evidence.keys import DeviceKey
from agent.evidence.utc import utc_now
from hw.errors import KeyMissing, SyncError

__all__ = ["STATION_DIR", "LoopbackStation", "enrolment_record", "make_pki", "start_loopback"]

STATION_DIR = "station"  # bodycam verify skips it: the station's files are not the device's

log = logging.getLogger(__name__)

_DAYS = 30


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        return loaded
    key = ec.generate_private_key(ec.SECP256R1())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return key


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(out: Path, stem: str, cn: str, ca_key: ec.EllipticCurvePrivateKey,
           ca: x509.Certificate, *, server: bool, hosts: tuple[str, ...] = ()) -> None:
    if (out / f"{stem}.crt").exists():
        return
    key = _key(out / f"{stem}.key")
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=_DAYS))
         .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                               else ExtendedKeyUsageOID.CLIENT_AUTH]),
                        critical=False))
    if server:
        import ipaddress

        names: list[x509.GeneralName] = [x509.DNSName("localhost")]
        names += [x509.IPAddress(ipaddress.ip_address(h)) for h in ("127.0.0.1", *hosts)]
        b = b.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    (out / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_pki(out: Path, device_id: str, *, hosts: tuple[str, ...] = ()) -> Path:
    """A test CA (``ca.crt``), ``server.crt`` for localhost/127.0.0.1 (and the IP addresses
    ``hosts``) and ``<device>.crt`` (CN = device id), made with ``cryptography`` only where
    absent: never an agency's PKI."""
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key = _key(out / "ca.key")
    if not (out / "ca.crt").exists():
        now = dt.datetime.now(dt.UTC)
        ca_cert = (x509.CertificateBuilder().subject_name(_name("bodycam loopback test CA"))
                   .issuer_name(_name("bodycam loopback test CA"))
                   .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5))
                   .not_valid_after(now + dt.timedelta(days=_DAYS))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                False, False), critical=True)
                   .sign(ca_key, hashes.SHA256()))
        (out / "ca.crt").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    ca = x509.load_pem_x509_certificate((out / "ca.crt").read_bytes())
    _issue(out, "server", "localhost", ca_key, ca, server=True, hosts=hosts)
    _issue(out, device_id, device_id, ca_key, ca, server=False)
    return out


def enrolment_record(device_id: str, key: DeviceKey, tls_key_pem: bytes) -> dict[str, str]:
    """The record ``bodycam-provision`` writes: evidence key and a CSR from the TLS key."""
    tls_key = serialization.load_pem_private_key(tls_key_pem, password=None)
    assert isinstance(tls_key, ec.EllipticCurvePrivateKey)
    csr = (x509.CertificateSigningRequestBuilder().subject_name(_name(device_id))
           .sign(tls_key, hashes.SHA256()))
    return {"type": "bodycam-enrolment-request/v1", "device_id": device_id,
            "public_key_ed25519_b64": key.public_b64, "public_key_pem": key.public_pem.decode(),
            "fingerprint_sha256": key.fingerprint,
            "mqtt_csr_pem": csr.public_bytes(serialization.Encoding.PEM).decode(),
            "created_utc": utc_now(0)}


def _previous_port(config: Path) -> int:
    """The port a previous run's station listened on (0 = none: any free port)."""
    import tomllib

    try:
        port = tomllib.loads(config.read_text())["station"]["port"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0
    return port if isinstance(port, int) and 0 < port < 65536 else 0


def _bodycam(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, check=False, timeout=120)


class LoopbackStation:
    """``bodycam station run`` on 127.0.0.1 in a child process, data in ``root``."""

    def __init__(self, root: Path, device_id: str, *, port: int = 0, listen: str = "127.0.0.1",
                 prefix: tuple[str, ...] = (), **limits: int) -> None:
        self.root = Path(root)
        self.device_id = device_id
        self.listen = listen
        self.prefix = prefix  # e.g. ("ip", "netns", "exec", NS): where the station runs
        self.pki = self.root / "pki"
        self.config = self.root / "station.toml"
        self.port = port
        self._limits = limits
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def prepare(self, key: DeviceKey) -> None:
        """PKI, configuration and the device's enrolment (idempotent)."""
        self.root.mkdir(parents=True, exist_ok=True)
        make_pki(self.pki, self.device_id,
                 hosts=() if self.listen == "127.0.0.1" else (self.listen,))
        self._write_config()
        record = self.root / f"{self.device_id}.enrol.json"
        record.write_text(json.dumps(enrolment_record(
            self.device_id, key, (self.pki / f"{self.device_id}.key").read_bytes()), indent=2))
        done = _bodycam("station", "enrol", "--config", str(self.config), "--data-dir",
                        str(self.root), str(record))
        if done.returncode == 1:  # registered with another key: the device rotated its key
            log.info("loopback station: %s stays enrolled with its first key; the uploader "
                     "presents the key rotations (%s)", self.device_id, done.stderr.strip())
        elif done.returncode != 0:
            raise RuntimeError(f"enrolling {self.device_id} at the loopback station failed: "
                               f"{done.stderr.strip() or done.stdout.strip()}")

    def _write_config(self) -> None:
        lines = ["[station]", f'listen = "{self.listen}"', f"port = {self.port}",
                 f'url = "https://{self.listen}:{self.port}"' if self.port else "",
                 "[tls]", f'cafile = "{self.pki / "ca.crt"}"',
                 f'certfile = "{self.pki / "server.crt"}"',
                 f'keyfile = "{self.pki / "server.key"}"', "[limits]",
                 *(f"{k} = {v}" for k, v in self._limits.items())]
        self.config.write_text("\n".join(line for line in lines if line) + "\n")

    def receipt_key(self) -> str:
        """The station's receipt key (base64), as ``station info --json`` reports it."""
        return str(self._info()["receipt_key"])

    def witness_config(self) -> WitnessConfig:
        """The station as the device's witness (``[[witnesses]]``): its witness key from
        ``station info --json``, its URL, and the device's agency certificate (the station
        requires one). Call after :meth:`start` (the URL names the port it got)."""
        return WitnessConfig(url=f"{self.url}/witness", vkey=str(self._info()["witness_vkey"]),
                             cafile=str(self.pki / "ca.crt"),
                             certfile=str(self.pki / f"{self.device_id}.crt"),
                             keyfile=str(self.pki / f"{self.device_id}.key"))

    def _info(self) -> dict[str, object]:
        done = _bodycam("station", "info", "--json", "--config", str(self.config),
                        "--data-dir", str(self.root))
        if done.returncode != 0:
            raise RuntimeError(f"station info failed: {done.stderr.strip()}")
        return dict(json.loads(done.stdout))

    def start(self, timeout: float = 60.0) -> str:
        """Start the station; its URL once it listens."""
        err = open(self.root / "station.log", "ab")  # noqa: SIM115 -- the child keeps it
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "agent.cli", "station", "run", "--config",
             str(self.config),
             "--data-dir", str(self.root)], stdout=subprocess.PIPE, stderr=err,
            start_new_session=True)
        err.close()
        assert self.proc.stdout is not None
        buf = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while b"listening on " not in buf or not buf.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("the loopback station did not start; see "
                                       f"{self.root / 'station.log'}")
                if sel.select(left):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    buf += chunk
        self.url = buf.split(b"listening on ", 1)[1].split(b"\n", 1)[0].decode().strip()
        if self.port == 0:  # remember the port the system chose, for the next run
            self.port = int(self.url.rsplit(":", 1)[1].rstrip("/"))
            self._write_config()
        return self.url

    def offload_config(self, base: OffloadConfig, receipt_key: str) -> OffloadConfig:
        """``base`` pointed at this station, its receipt key trusted."""
        return dataclasses.replace(
            base, enabled=True, url=self.url, cafile=str(self.pki / "ca.crt"),
            certfile=str(self.pki / f"{self.device_id}.crt"),
            keyfile=str(self.pki / f"{self.device_id}.key"), insecure_http=False,
            station_keys=[*base.station_keys, receipt_key])

    def stop(self) -> int | None:
        """SIGTERM and wait (requests in flight end, bodies are fsynced)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return rc

    def kill(self) -> None:
        """SIGKILL: the station crashes."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()


def start_loopback(cfg: Config, data_dir: Path) -> tuple[Config, LoopbackStation]:
    """``bodycam run --with-station``: a station in ``<data dir>/station`` with the simulated
    device enrolled (its evidence key made now if this is its first run), and ``cfg`` with
    ``[offload]`` pointed at it and its receipt key trusted, and the station added to
    ``[[witnesses]]`` (it cosigns every checkpoint; ``log/witnessed/`` keeps the note)."""
    from agent.provision import check_data_dir

    data_dir = check_data_dir(data_dir)
    key_path = data_dir / "keys" / "device.key"
    try:
        key = DeviceKey.load(key_path)
    except KeyMissing:
        log.warning("simulator: generating a device key at %s", key_path)
        key = DeviceKey.generate(key_path)
    root = data_dir / STATION_DIR
    # The port of the last run, if free: the station's URL names the uploads the device keeps
    # in state/, so a stable URL resumes them instead of leaving them to expire at the station.
    station = LoopbackStation(root, cfg.device.id, port=_previous_port(root / "station.toml"))
    try:
        station.prepare(key)
        receipt_key = station.receipt_key()
        try:
            url = station.start()
        except RuntimeError:
            if station.port == 0:
                raise
            log.warning("loopback station: port %d is taken; using another", station.port)
            station.port = 0
            station.prepare(key)
            url = station.start()
        witness = station.witness_config()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        station.stop()
        raise SyncError(f"loopback station: {exc}") from exc
    log.info("collection station on %s, data in %s (bodycam station list --data-dir %s)", url,
             station.root, station.root)
    # The station is also the device's witness, unless a witness of the same name is listed.
    known = {w.vkey.split("+", 1)[0] for w in cfg.witnesses}
    witnesses = cfg.witnesses if witness.vkey.split("+", 1)[0] in known else \
        [*cfg.witnesses, witness]
    return dataclasses.replace(cfg, offload=station.offload_config(cfg.offload, receipt_key),
                               witnesses=witnesses), station
