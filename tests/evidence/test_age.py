"""age v1: the stock Debian age CLI and our streaming implementation read each other's files."""

from __future__ import annotations

import os
import subprocess

import pytest
from evbench import AgencyKey, need

from agent.evidence.age import (
    CHUNK_SIZE,
    ENCRYPTED_CHUNK_SIZE,
    AgeDecryptor,
    AgeEncryptor,
    AgeFormatError,
    Identity,
    Recipient,
    header_length,
)

SIZES = [0, 1, 65535, 65536, 65537, 3 * 65536, 200_003]


def encrypt(recipients: list[Recipient], data: bytes, step: int = 10_000) -> bytes:
    enc = AgeEncryptor(recipients)
    out = [enc.header()]
    for i in range(0, len(data), step):
        out.append(enc.update(data[i : i + step]))
    out.append(enc.finalize())
    return b"".join(out)


def decrypt(identity: Identity, blob: bytes, *, tolerant: bool = False,
            step: int = 7_777) -> tuple[bytes, bool]:
    dec = AgeDecryptor([identity], tolerant=tolerant)
    out = [dec.update(blob[i : i + step]) for i in range(0, len(blob), step)]
    out.append(dec.finalize())
    return b"".join(out), dec.truncated


def age_cli(*args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    need("age")
    return subprocess.run(["age", *args], input=data, capture_output=True, timeout=60,
                          check=False)


@pytest.mark.parametrize("size", SIZES)
def test_age_cli_decrypts_what_we_write(agency: AgencyKey, size: int) -> None:
    """Debian's `age -d` recovers exactly our plaintext, including chunk-boundary sizes."""
    data = os.urandom(size)
    blob = encrypt([agency.recipient], data)
    chunks = max(1, -(-size // CHUNK_SIZE))
    assert len(blob) == header_length(blob) + size + 16 * chunks
    got = age_cli("-d", "-i", str(agency.path), data=blob)
    assert got.returncode == 0, got.stderr.decode()
    assert got.stdout == data


@pytest.mark.parametrize("size", [0, 65536, 200_003])
def test_we_decrypt_what_age_cli_writes(agency: AgencyKey, size: int) -> None:
    """Our streaming decryptor reads files produced by `age -r`."""
    data = os.urandom(size)
    blob = age_cli("-r", str(agency.recipient), data=data).stdout
    assert decrypt(agency.identity, blob) == (data, False)


def test_multiple_recipients_each_decrypt(agency: AgencyKey) -> None:
    """Every recipient can decrypt; a stranger cannot."""
    other = Identity.generate()
    blob = encrypt([other.recipient, agency.recipient], b"evidence")
    assert decrypt(other, blob)[0] == b"evidence"
    assert age_cli("-d", "-i", str(agency.path), data=blob).stdout == b"evidence"
    with pytest.raises(AgeFormatError, match="no identity"):
        decrypt(Identity.generate(), blob)


def test_truncated_file_yields_full_chunks_like_age_cli(agency: AgencyKey) -> None:
    """A crash mid-chunk: age -d and our tolerant mode both give the complete chunks."""
    data = os.urandom(3 * CHUNK_SIZE + 1000)
    blob = encrypt([agency.recipient], data)
    cut = blob[: header_length(blob) + 2 * ENCRYPTED_CHUNK_SIZE + 500]
    cli = age_cli("-d", "-i", str(agency.path), data=cut)
    assert cli.returncode != 0
    assert cli.stdout == data[: 2 * CHUNK_SIZE]
    assert decrypt(agency.identity, cut, tolerant=True) == (data[: 2 * CHUNK_SIZE], True)
    with pytest.raises(AgeFormatError, match="truncated"):
        decrypt(agency.identity, cut)


def test_cut_exactly_at_chunk_boundary_is_truncation_not_success(agency: AgencyKey) -> None:
    """A file cut at a chunk boundary lacks its last-flagged chunk and is reported as such."""
    data = os.urandom(2 * CHUNK_SIZE + 10)
    blob = encrypt([agency.recipient], data)
    cut = blob[: header_length(blob) + ENCRYPTED_CHUNK_SIZE]
    assert decrypt(agency.identity, cut, tolerant=True) == (data[:CHUNK_SIZE], True)
    assert age_cli("-d", "-i", str(agency.path), data=cut).returncode != 0


def test_tampering_detected_even_in_tolerant_mode(agency: AgencyKey) -> None:
    """A flipped bit inside a chunk or the header never decrypts."""
    blob = bytearray(encrypt([agency.recipient], os.urandom(3 * CHUNK_SIZE)))
    head = header_length(bytes(blob))
    assert head is not None
    flipped = bytearray(blob)
    flipped[head + 100] ^= 1
    with pytest.raises(AgeFormatError, match="chunk 0"):
        decrypt(agency.identity, bytes(flipped), tolerant=True)
    flipped = bytearray(blob)
    flipped[30] ^= 1  # inside the recipient stanza
    with pytest.raises(AgeFormatError):
        decrypt(agency.identity, bytes(flipped))


def test_encryptor_holds_back_a_full_chunk_until_it_knows_it_is_not_last() -> None:
    """Exactly 64 KiB fed: nothing sealed yet; one more byte releases the first chunk."""
    enc = AgeEncryptor([Identity.generate().recipient])
    enc.header()
    assert enc.update(b"\0" * CHUNK_SIZE) == b""
    assert len(enc.update(b"\0")) == ENCRYPTED_CHUNK_SIZE
    assert len(enc.finalize()) == 1 + 16


def test_bech32_keys_round_trip_and_reject_garbage(agency: AgencyKey) -> None:
    """age1/AGE-SECRET-KEY-1 strings round-trip; a typo fails the checksum."""
    assert Recipient.parse(str(agency.recipient)) == agency.recipient
    assert Identity.parse(str(agency.identity)) == agency.identity
    text = str(agency.recipient)
    typo = text[:-1] + ("q" if text[-1] != "q" else "p")
    with pytest.raises(AgeFormatError, match="checksum"):
        Recipient.parse(typo)
    with pytest.raises(AgeFormatError):
        Recipient.parse(str(agency.identity))
