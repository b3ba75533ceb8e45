"""A second broker implementation for interoperability tests: ejabberd's mod_mqtt on loopback.

Debian's ``ejabberd`` package, started directly with ``erl`` (not ``ejabberdctl``, which wants
the system user and node name) from a generated ``ejabberd.yml`` in a temporary directory:
one TLS listener on a free loopback port that verifies client certificates against the test
CA, no other listener, Mnesia spool in the same directory.

Identity on mod_mqtt: without a username, the session's JID is ``<client id>@<first host>``;
without a password, the client certificate's CN must name that same JID. So the device's
client id must be its device id (= its CN), and the back office must connect with client id
``backoffice``. Sessions and subscriptions live in RAM (a broker restart forgets them; retained
messages are on disk), and the default session expiry is 300 s whatever the client asks.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mqtt_harness import wait_port

EJABBERD_LIBS = Path("/usr/lib/x86_64-linux-gnu")


def ejabberd_available() -> bool:
    """ejabberd's Erlang applications and the ``erl`` runtime are installed."""
    return shutil.which("erl") is not None and any(EJABBERD_LIBS.glob("ejabberd-*/ebin"))


@dataclass
class Ejabberd:
    """An ejabberd process; ``kill``/``start`` simulate a broker crash (SIGKILL, restart)."""

    workdir: Path
    port: int
    host: str = "localhost"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / "logs" / "ejabberd.log"

    def configure(self, certs: Path) -> Ejabberd:
        """Write ejabberd.yml: mod_mqtt over TLS with client-certificate authentication."""
        (self.workdir / "spool").mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        pem = self.workdir / "server.pem"
        pem.write_bytes((certs / "server.crt").read_bytes() + (certs / "server.key").read_bytes())
        pem.chmod(0o600)
        ca = certs / "ca.crt"
        (self.workdir / "ejabberd.yml").write_text(
            f"""hosts:
  - localhost
loglevel: info
certfiles:
  - {pem}
ca_file: {ca}
c2s_cafile: {ca}
auth_method: [internal]
listen:
  -
    port: {self.port}
    ip: "127.0.0.1"
    module: mod_mqtt
    tls: true
    tls_verify: true
modules:
  mod_mqtt: {{}}
""")
        return self

    def start(self) -> None:
        env = {"PATH": "/usr/bin:/bin", "HOME": str(self.workdir),
               "EJABBERD_CONFIG_PATH": str(self.workdir / "ejabberd.yml"),
               "EJABBERD_LOG_PATH": str(self.log), "ERL_LIBS": str(EJABBERD_LIBS),
               "ERL_CRASH_DUMP_BYTES": "0"}
        self.proc = subprocess.Popen(
            ["erl", "+K", "true", "-noinput", "-mnesia", "dir", f'"{self.workdir / "spool"}"',
             "-s", "ejabberd"], cwd=self.workdir, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port("127.0.0.1", self.port, timeout=30)
        except OSError as exc:
            self.kill()
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"ejabberd did not start:\n{tail}") from exc

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None
