"""Broker address, TLS material and reconnect pacing for the MQTT link."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from hw.errors import ConfigError

__all__ = ["Backoff", "BrokerAddress", "TlsSettings", "parse_broker_url"]

_DEFAULT_PORTS = {"mqtts": 8883, "mqtt": 1883}


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS: the CA that signed the broker, and this device's client certificate and key.

    Certificate and key are both given (the device's identity is its certificate) or both
    ``None`` (the broker is authenticated by the CA, the device by username and password).
    """

    cafile: Path
    certfile: Path | None
    keyfile: Path | None

    def check(self) -> None:
        """Raise ConfigError naming the first file that cannot be read."""
        if (self.certfile is None) != (self.keyfile is None):
            raise ConfigError("give both the client certificate and its key, or neither",
                              key="mqtt.certfile")
        for key, path in (("cafile", self.cafile), ("certfile", self.certfile),
                          ("keyfile", self.keyfile)):
            if path is not None and not Path(path).is_file():
                raise ConfigError(f"{path}: no such file", key=f"mqtt.{key}")


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where to connect and whether the connection is encrypted."""

    host: str
    port: int
    tls: bool


def parse_broker_url(
    url: str, *, tls: TlsSettings | None, allow_plaintext: bool = False
) -> BrokerAddress:
    """``mqtts://host[:port]`` (needs ``tls``), or ``mqtt://`` only if plaintext is allowed.

    Evidence metadata travels over this link, so an unencrypted broker is a configuration
    error unless someone opted in explicitly (lab benches, loopback tests).
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        # Never echo the URL: the part before '@' may be a password.
        raise ConfigError("credentials in the broker URL are refused; use mqtt.username and "
                          "mqtt.password_file", key="mqtt.url")
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ConfigError(f"{url!r}: scheme must be mqtts:// or mqtt://", key="sync.broker")
    if not parts.hostname:
        raise ConfigError(f"{url!r}: no host", key="sync.broker")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{url!r}: only scheme, host and port are allowed", key="sync.broker")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError as exc:
        raise ConfigError(f"{url!r}: bad port ({exc})", key="sync.broker") from exc
    if scheme == "mqtt":
        if not allow_plaintext:
            raise ConfigError(
                f"{url!r}: plaintext MQTT refused; use mqtts:// or set allow_plaintext",
                key="sync.broker",
            )
        return BrokerAddress(parts.hostname, port, tls=False)
    if tls is None:
        raise ConfigError(f"{url!r}: mqtts:// needs TLS settings (CA, cert, key)", key="sync.tls")
    tls.check()
    return BrokerAddress(parts.hostname, port, tls=True)


class Backoff:
    """Exponential reconnect delay with jitter, so a fleet does not reconnect in lockstep.

    Each failure doubles the ceiling up to ``maximum``; the delay is drawn uniformly from the
    upper half of the current ceiling ("equal jitter"), which keeps a floor under the retry
    rate while still spreading devices out after a broker restart.
    """

    def __init__(self, minimum: float, maximum: float, *, rng: random.Random | None = None) -> None:
        if not 0 < minimum <= maximum:
            raise ConfigError(
                f"reconnect=({minimum}, {maximum}): need 0 < min <= max", key="sync.reconnect"
            )
        self._min = minimum
        self._max = maximum
        self._failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """Delay before the next attempt; counts one more failure."""
        ceiling = min(self._max, self._min * (2**min(self._failures, 30)))
        self._failures += 1
        return self._rng.uniform(max(self._min, ceiling / 2), ceiling)

    def reset(self) -> None:
        """A connection succeeded: start again from the minimum."""
        self._failures = 0
