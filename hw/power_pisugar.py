"""Battery from a PiSugar UPS through its ``pisugar-server`` text protocol.

``pisugar-server`` (PiSugar/pisugar-power-manager-rs) owns the I²C link to the PiSugar board
and answers line-oriented requests on a Unix socket (``/tmp/pisugar-server.sock``) and on TCP
port 8423: the request ``get battery`` is answered ``battery: 85.3``. The reader uses TCP unless
told otherwise: under the agent's unit (``PrivateTmp=yes``) the socket in the host's ``/tmp`` is
invisible. The fields used here:

========================  ================  ==============================================
request                   answer            meaning
========================  ================  ==============================================
``get battery``           ``85.3``          state of charge, %
``get battery_v``         ``3.91``          cell voltage, V
``get battery_i``         ``-0.23``         current, A (PiSugar 2: negative = discharging)
``get battery_charging``  ``true|false``    charger active
``get battery_power_plugged`` ``true|false``  USB power present
========================  ================  ==============================================

The sign of ``battery_i`` differs between board generations, so the reader derives the
direction from ``battery_power_plugged``/``battery_charging`` and keeps only the magnitude.
A field the server does not answer becomes None; an unreachable server raises
:class:`hw.errors.PowerError`.

:class:`PiSugarServerSim` beside the driver is a small threaded fake server for tests and the
simulator.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Mapping
from pathlib import Path

from hw.errors import PowerError
from hw.power import BatteryReading
from hw.throttle import ThrottleSource

__all__ = ["PiSugarBattery", "PiSugarServerSim"]

_FIELDS = ("battery", "battery_v", "battery_i", "battery_charging", "battery_power_plugged")


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _bool(text: str | None) -> bool | None:
    if text is None:
        return None
    return {"true": True, "false": False}.get(text.strip().lower())


class PiSugarBattery:
    """A PiSugar via ``pisugar-server``; one short connection per reading, any thread."""

    def __init__(
        self,
        socket_path: Path | str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8423,
        timeout_s: float = 1.0,
        throttle: ThrottleSource | None = None,
    ) -> None:
        """Use TCP ``host:port`` unless a Unix ``socket_path`` is given.

        TCP is the default because the agent's systemd unit has ``PrivateTmp=yes``: the server's
        ``/tmp/pisugar-server.sock`` lives in the host's ``/tmp``, which the agent never sees,
        whereas the loopback port is reachable from inside the sandbox.
        """
        self._path = Path(socket_path) if socket_path is not None else None
        self._address = (host, port)
        self._timeout = timeout_s
        self._throttle = throttle

    def set_load(self, state: str) -> None:
        """The PiSugar measures the load itself; nothing to do."""

    def _connect(self) -> socket.socket:
        try:
            if self._path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(self._timeout)
                sock.connect(str(self._path))
            else:
                sock = socket.create_connection(self._address, timeout=self._timeout)
        except OSError as exc:
            where = self._path or f"{self._address[0]}:{self._address[1]}"
            raise PowerError(f"pisugar-server at {where} unreachable: {exc}") from exc
        return sock

    def query(self) -> dict[str, str]:
        """Ask for every field; a field the server does not answer is left out."""
        answers: dict[str, str] = {}
        with self._connect() as sock:
            reader = sock.makefile("r", encoding="ascii", errors="replace", newline="\n")
            for field in _FIELDS:
                try:
                    sock.sendall(f"get {field}\n".encode("ascii"))
                    line = reader.readline()
                except TimeoutError:
                    continue
                except OSError as exc:
                    raise PowerError(f"pisugar-server dropped the connection: {exc}") from exc
                key, sep, value = line.strip().partition(":")
                if sep and key.strip() == field:
                    answers[field] = value.strip()
        return answers

    def read(self) -> BatteryReading:
        """One reading from the server."""
        answers = self.query()
        plugged = _bool(answers.get("battery_power_plugged"))
        charging = _bool(answers.get("battery_charging"))
        volts = _float(answers.get("battery_v"))
        amps = _float(answers.get("battery_i"))
        if charging:
            status = "Charging"
        elif plugged:
            status = "Not charging"
        elif plugged is False:
            status = "Discharging"
        else:
            status = "Unknown"
        current = None
        if amps is not None:
            current = abs(amps) if status in ("Discharging", "Unknown") else -abs(amps)
        undervoltage = throttled = False
        if self._throttle is not None:
            with contextlib.suppress(PowerError):
                flags = self._throttle.read()
                undervoltage, throttled = flags.undervoltage, flags.throttled or flags.freq_capped
        return BatteryReading(
            status=status,
            capacity_pct=_float(answers.get("battery")),
            voltage_v=volts,
            current_a=current,
            power_w=current * volts if current is not None and volts is not None else None,
            undervoltage=undervoltage,
            throttled=throttled,
            source="pisugar",
            external_power=plugged,
        )


class PiSugarServerSim:
    """A fake ``pisugar-server`` (Unix socket or TCP): answers ``get <field>`` from ``values``.

    ``set(field, value)`` changes an answer; ``requests`` records every line received.
    Unknown fields are answered with an empty line, like a server that does not support them.
    Use as a context manager; the accept loop runs on one daemon thread, ``values`` and
    ``requests`` are guarded by ``_lock``.
    """

    def __init__(self, socket_path: Path | None, values: Mapping[str, str] | None = None) -> None:
        """Serve on the Unix socket ``socket_path``, or on TCP 127.0.0.1 (a free port) if None."""
        self.socket_path = Path(socket_path) if socket_path is not None else None
        self.values: dict[str, str] = dict(values or {
            "battery": "76.5", "battery_v": "3.96", "battery_i": "-0.42",
            "battery_charging": "false", "battery_power_plugged": "false",
        })
        self.requests: list[str] = []
        self._lock = threading.Lock()
        if self.socket_path is not None:
            self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._server.bind(str(self.socket_path))
            self.port = 0
        else:
            self._server = socket.create_server(("127.0.0.1", 0))
            self.port = self._server.getsockname()[1]
        self._server.listen(4)
        self._thread = threading.Thread(target=self._serve, name="pisugar-sim", daemon=True)
        self._thread.start()

    def set(self, field: str, value: str) -> None:
        """Change what the server answers for ``field``."""
        with self._lock:
            self.values[field] = value

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines:
                for raw in lines:
                    request = raw.decode("ascii", "replace").strip()
                    with self._lock:
                        self.requests.append(request)
                        verb, _, field = request.partition(" ")
                        value = self.values.get(field) if verb == "get" else None
                    reply = f"{field}: {value}\n" if value is not None else "\n"
                    try:
                        conn.sendall(reply.encode("ascii"))
                    except OSError:
                        break

    def close(self) -> None:
        """Stop serving and remove the socket file."""
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._thread.join(timeout=5)
        if self.socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()

    def __enter__(self) -> PiSugarServerSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
