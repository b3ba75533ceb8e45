"""BIP-173 Bech32 encoding, as used by age for ``age1…`` recipients and secret keys.

age keys use plain Bech32 (not Bech32m) and exceed BIP-173's 90-character limit, so this
small codec enforces the checksum and character set but not that length limit.
"""

from __future__ import annotations

__all__ = ["bech32_decode", "bech32_encode"]

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            if (top >> i) & 1:
                chk ^= _GEN[i]
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    acc = bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or (acc << (tobits - bits)) & maxv:
        raise ValueError("invalid padding in bech32 data")
    return out


def bech32_encode(hrp: str, data: bytes) -> str:
    """Encode ``data`` under human-readable part ``hrp`` (lower case)."""
    values = _convert(data, 8, 5, True)
    polymod = _polymod([*_hrp_expand(hrp), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[v] for v in values + checksum)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """Return ``(hrp, data)``; raises ``ValueError`` on mixed case or a bad checksum."""
    if text.lower() != text and text.upper() != text:
        raise ValueError("bech32 string mixes upper and lower case")
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError("bech32 separator missing or data too short")
    hrp, rest = text[:pos], text[pos + 1 :]
    if any(ord(c) < 33 or ord(c) > 126 for c in hrp):
        raise ValueError("bech32 human-readable part has invalid characters")
    try:
        values = [_CHARSET.index(c) for c in rest]
    except ValueError:
        raise ValueError("bech32 data has invalid characters") from None
    if _polymod([*_hrp_expand(hrp), *values]) != 1:
        raise ValueError("bech32 checksum mismatch")
    return hrp, bytes(_convert(values[:-6], 5, 8, False))
