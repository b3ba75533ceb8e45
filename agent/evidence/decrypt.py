"""``bodycam decrypt``: the plaintext of one segment, including a recovered (truncated) one.

A segment sealed normally is a complete age v1 file and the stock ``age -d`` decrypts it. A
segment recovered after a crash was cut back to its last complete 64 KiB chunk and has no
final chunk, so ``age`` stops with an error. Its chunks are still authenticated one by one:
this command writes every chunk that authenticates (the prefix is exactly what the camera
wrote, nothing guessed), discards the unauthenticated tail, and says precisely what it
wrote. Decryption itself is :class:`agent.evidence.age.AgeDecryptor` in tolerant mode.

A wrong identity, a file that is not age, or a chunk that does not authenticate (altered
ciphertext) is a failure: a named error, and no output file is left behind.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .age import (
    CHUNK_SIZE,
    ENCRYPTED_CHUNK_SIZE,
    AgeDecryptor,
    AgeFormatError,
    Identity,
    header_length,
)
from .inventory import UnsafeFile, open_regular

__all__ = ["DecryptResult", "decrypt_main", "decrypt_stream"]

EXIT_COMPLETE, EXIT_FAILED, EXIT_USAGE, EXIT_TRUNCATED = 0, 1, 2, 3
_READ = 1 << 20
_MAX_IDENTITY = 64 * 1024
_HEAD_KEEP = 128 * 1024  # enough to find the end of any header AgeDecryptor accepts

_HELP = """\
exit status:
  0  complete: the final chunk is present; the output is the whole segment
  3  truncated: no final chunk (a recovered segment); the output is the authenticated
     prefix -- every complete chunk -- and the report says how much that is
  1  failed: wrong identity, not an age file, or a chunk that does not authenticate
     (altered ciphertext); no output file is left
  2  usage: bad arguments, unreadable identity, SEGMENT not a regular file, or OUT exists
"""


class _UsageError(ValueError):
    """An argument, identity file or path the command cannot use (exit 2)."""


@dataclass(frozen=True, slots=True)
class DecryptResult:
    """What was decrypted from one segment file."""

    cipher_bytes: int
    header_bytes: int
    plain_bytes: int
    chunks: int
    complete: bool

    @property
    def discarded_bytes(self) -> int:
        """Ciphertext after the last authenticated chunk (a truncated file's torn tail)."""
        if self.complete:
            return 0
        return self.cipher_bytes - self.header_bytes - self.chunks * ENCRYPTED_CHUNK_SIZE

    def describe(self) -> str:
        """One plain-language sentence for the operator."""
        if self.complete:
            return (f"complete: {self.plain_bytes} bytes in {self.chunks} chunk(s), "
                    f"final chunk present and authenticated")
        return (f"truncated: final chunk missing; wrote the authenticated prefix of "
                f"{self.plain_bytes} bytes ({self.chunks} complete chunk(s) of {CHUNK_SIZE} bytes); "
                f"discarded {self.discarded_bytes} unauthenticated trailing byte(s) of "
                f"{self.cipher_bytes}")


def decrypt_stream(src: BinaryIO, dst: BinaryIO, identities: Sequence[Identity]) -> DecryptResult:
    """Decrypt ``src`` into ``dst`` chunk by chunk; raises :class:`AgeFormatError` on failure.

    A file that ends inside its header holds nothing decryptable and is a failure too.
    """
    dec = AgeDecryptor(identities, tolerant=True)
    head = bytearray()
    cipher = plain = 0
    while piece := src.read(_READ):
        cipher += len(piece)
        if len(head) < _HEAD_KEEP:
            head += piece[: _HEAD_KEEP - len(head)]
        out = dec.update(piece)
        plain += len(out)
        dst.write(out)
    out = dec.finalize()
    plain += len(out)
    dst.write(out)
    header = header_length(bytes(head))
    if header is None:
        raise AgeFormatError(f"the file ends inside its age header ({cipher} bytes): "
                             f"there is nothing to decrypt")
    if dec.truncated:
        # Every authenticated chunk of a truncated file is a full, non-final chunk.
        return DecryptResult(cipher, header, plain, plain // CHUNK_SIZE, complete=False)
    return DecryptResult(cipher, header, plain, max(1, -(-plain // CHUNK_SIZE)), complete=True)


def _open_regular(path: Path) -> BinaryIO:
    """Open for reading without following a link or blocking on a FIFO or device."""
    try:
        return open_regular(path)
    except UnsafeFile as exc:
        raise _UsageError(f"{path}: {exc}") from None


def _identities(path: Path | None) -> list[Identity]:
    if path is None:
        env = os.environ.get("BODYCAM_AGE_IDENTITY")
        if not env:
            raise _UsageError("an agency identity is needed: --identity FILE "
                                    "(or BODYCAM_AGE_IDENTITY)")
        path = Path(env)
    with _open_regular(path) as fh:
        raw = fh.read(_MAX_IDENTITY + 1)
    if len(raw) > _MAX_IDENTITY:
        raise _UsageError(f"{path}: larger than {_MAX_IDENTITY} bytes; not an identity file")
    try:
        return Identity.from_file(raw.decode("utf-8"))
    except (UnicodeDecodeError, AgeFormatError) as exc:
        raise _UsageError(f"{path}: {exc}") from None


@contextlib.contextmanager
def _output(out: Path | None) -> Iterator[BinaryIO]:
    """stdout, or ``out`` written through a temporary name and renamed only on success."""
    if out is None:
        if sys.stdout.isatty():
            raise _UsageError("refusing to write media to a terminal: use --out FILE")
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    if out.exists() or out.is_symlink():
        raise _UsageError(f"{out}: exists; not overwritten")
    tmp = out.with_name(f".{out.name}.partial")
    try:
        fh = open(tmp, "xb")  # noqa: SIM115  # closed below, before the rename
    except OSError as exc:
        raise _UsageError(f"{out}: cannot create ({exc.strerror or exc})") from None
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="bodycam decrypt", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Decrypt one segment with the agency identity, including a recovered "
                    "segment that has no final age chunk (stock `age -d` refuses those).",
        epilog=_HELP)
    ap.add_argument("segment", type=Path, help="the segment file (*.age)")
    ap.add_argument("--identity", type=Path,
                    help="agency age identity file (default: $BODYCAM_AGE_IDENTITY)")
    ap.add_argument("--out", type=Path,
                    help="write the plaintext here (must not exist; default: stdout)")
    return ap


def decrypt_main(argv: Sequence[str] | None = None) -> int:
    """``bodycam decrypt SEGMENT [--identity FILE] [--out FILE]``; see the exit codes in --help."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:
        return EXIT_COMPLETE if exc.code == 0 else EXIT_USAGE
    try:
        identities = _identities(args.identity)
        with _open_regular(args.segment) as src, _output(args.out) as dst:
            result = decrypt_stream(src, dst, identities)
    except _UsageError as exc:
        print(f"bodycam decrypt: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (AgeFormatError, OSError) as exc:
        what = (exc.strerror or exc) if isinstance(exc, OSError) else exc
        kept = ("no output file kept" if args.out is not None
                else "what reached stdout is incomplete and must not be used")
        print(f"bodycam decrypt: {args.segment}: {what}; {kept}", file=sys.stderr)
        return EXIT_FAILED
    print(f"bodycam decrypt: {args.segment}: {result.describe()}", file=sys.stderr)
    return EXIT_COMPLETE if result.complete else EXIT_TRUNCATED
