"""The device's tlog-witness client: one witness, one add-checkpoint exchange at a time.

The device holds its whole log, so it can prove consistency from any size a witness names:
it starts from the size it believes the witness holds (0 on first contact, or the size of
the last cosignature it kept), and on a 409 reads the witness's size from the body and
retries once with a proof from there. A returned cosignature is verified against the
witness's configured vkey before anyone sees it; a witness that answers with anything else
is treated as unavailable, never trusted.

Threading: a client is used by one thread at a time (the :class:`~agent.witness.pool.WitnessPool`
gives each witness its own worker); :attr:`known_size` is that thread's memo.
"""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
from collections.abc import Callable, Sequence

from agent.evidence.checkpoint import parse_signed_checkpoint
from hw.errors import VerificationError

from .cosignature import TYPE_COSIGNATURE, Cosignature, VerifierKey
from .protocol import encode_request, parse_conflict, parse_cosignatures
from .refusals import (
    BadRequest,
    CosignatureInvalid,
    OldSizeConflict,
    ProofRejected,
    SignatureRejected,
    UnknownOrigin,
    WitnessRefusal,
    WitnessUnavailable,
)

__all__ = ["ProofSource", "WitnessClient"]

ProofSource = Callable[[int], Sequence[bytes]]
"""``old_size → consistency proof`` from that size to the checkpoint being submitted."""

_MAX_RESPONSE = 64 * 1024
_REFUSALS: dict[int, type[WitnessRefusal]] = {
    400: BadRequest, 403: SignatureRejected, 404: UnknownOrigin, 422: ProofRejected}


class WitnessClient:
    """Submits checkpoints to one witness at ``url`` (its submission prefix) and checks the
    cosignature against ``vkey`` (type 0x04)."""

    def __init__(self, url: str, vkey: VerifierKey | str, *, timeout_s: float = 10.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.vkey = VerifierKey.parse(vkey) if isinstance(vkey, str) else vkey
        if self.vkey.key_type != TYPE_COSIGNATURE:
            raise CosignatureInvalid(f"{self.vkey.name}: a witness vkey has signature type 0x04")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"witness URL {url!r} is not http(s)://host[:port][/prefix]")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + "/add-checkpoint"
        self._timeout = timeout_s
        self._ssl = ssl_context if ssl_context is not None else (
            ssl.create_default_context() if self._https else None)
        self.known_size = 0
        self.cosigned_size = 0  # largest size this witness verifiably cosigned for us
        self.rollback: str | None = None  # set when the witness forgot what it cosigned

    @property
    def name(self) -> str:
        """The witness's key name."""
        return self.vkey.name

    def add_checkpoint(self, checkpoint: bytes, proof_from: ProofSource) -> Cosignature:
        """Have the witness cosign ``checkpoint``; the verified cosignature.

        Raises :class:`WitnessRefusal` leaves for a refusal (a 422 means the witness holds a
        checkpoint this log does not extend: a fork), :class:`WitnessUnavailable` when the
        witness cannot be reached or breaks the protocol, :class:`CosignatureInvalid` when
        its answer does not verify under its vkey.
        """
        try:
            signed = parse_signed_checkpoint(checkpoint)
        except (VerificationError, ValueError) as exc:
            raise ValueError(f"not a signed checkpoint: {exc}") from None
        size = signed.checkpoint.size
        old = min(self.known_size, size)
        for attempt in range(2):
            status, body = self._post(encode_request(old, proof_from(old), checkpoint))
            if status == 200:
                cosig = self._verified(body, signed.checkpoint.body())
                self.known_size = size
                self.cosigned_size = max(self.cosigned_size, size)
                return cosig
            if status == 409:
                witness_size = parse_conflict(body)
                if witness_size > size:
                    self.known_size = witness_size
                    raise OldSizeConflict(
                        f"{self.name} has cosigned {witness_size} entries of this log, more than "
                        f"the {size} it now holds: the log was rolled back or forked", witness_size)
                if witness_size < self.cosigned_size:
                    # It cosigned more than it now admits: its state was lost or rolled back.
                    # Its cosignatures still verify, but an auditor must weigh them; keep going.
                    self.rollback = (f"{self.name} claims size {witness_size} after cosigning "
                                     f"{self.cosigned_size}: its state was lost or rolled back")
                if attempt == 0:
                    old = witness_size
                    continue
                raise OldSizeConflict(f"{self.name} keeps moving its size ({witness_size})",
                                      witness_size)
            refusal = _REFUSALS.get(status)
            text = body[:200].decode("utf-8", "replace").strip()
            if refusal is not None:
                raise refusal(f"{self.name} refused the checkpoint of size {size} ({status}): {text}")
            raise WitnessUnavailable(f"{self.name} answered HTTP {status}: {text}")
        raise AssertionError("unreachable")  # pragma: no cover

    def _verified(self, body: bytes, checkpoint_body: bytes) -> Cosignature:
        for cosig in parse_cosignatures(body):
            if (cosig.name, cosig.key_id) != (self.vkey.name, self.vkey.key_id):
                continue  # unknown keys are ignored (tlog-witness)
            if not cosig.verify(checkpoint_body, self.vkey):
                raise CosignatureInvalid(f"{self.name}'s cosignature does not verify")
            return cosig
        raise CosignatureInvalid(f"{self.name} answered without a cosignature by its key")

    def _post(self, body: bytes) -> tuple[int, bytes]:
        conn: http.client.HTTPConnection
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                               context=self._ssl)
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            conn.request("POST", self._path, body=body,
                         headers={"Content-Type": "text/plain; charset=utf-8"})
            resp = conn.getresponse()
            data = resp.read(_MAX_RESPONSE + 1)
            if len(data) > _MAX_RESPONSE:
                raise WitnessUnavailable(f"{self.name}: response larger than {_MAX_RESPONSE} bytes")
            return resp.status, data
        except (OSError, http.client.HTTPException) as exc:
            raise WitnessUnavailable(f"{self.name} unreachable at {self.url}: {exc!r}") from None
        finally:
            conn.close()
