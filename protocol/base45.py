"""Base45 (RFC 9285), strict.

Ride codes travel as base45 text so the QR code uses alphanumeric mode. Decoding is strict and
canonical: only the 45 alphabet characters, no lone trailing character, and no triple or pair
whose value overflows (so every byte string has exactly one text form, and two texts that
differ always decode to different bytes or fail).

Here the plain loops (MicroPython, and the reference); on CPython `encode` and `decode` are
protocol/base45_bulk.py's, with identical results and much faster (ride-code verification is
dominated by decoding after the signatures; the simulator's phones encode every code they
show). The bulk code lives apart so an MCU gate does not carry its names (docs/mcu.md).
"""

import sys

from protocol.errors import FormatError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
# Walked and indexed as bytes: on MicroPython a one-character str is an interned name (a qstr),
# so going through the str would intern the 45 characters (docs/mcu.md, the qstr pools).
_ALPHABET_B = ALPHABET.encode()
_INDEX = {}
for _i, _c in enumerate(_ALPHABET_B):
    _INDEX[_c] = _i


def encode_loop(data: bytes) -> str:
    """The reference encoder: one pair of bytes at a time."""
    a = _ALPHABET_B
    out = bytearray()
    n = len(data)
    i = 0
    while i + 1 < n:
        v = (data[i] << 8) | data[i + 1]
        e, v = divmod(v, 45 * 45)
        d, c = divmod(v, 45)
        out.append(a[c])
        out.append(a[d])
        out.append(a[e])
        i += 2
    if i < n:
        d, c = divmod(data[i], 45)
        out.append(a[c])
        out.append(a[d])
    return out.decode()


def _ascii(text) -> bytes:
    if isinstance(text, str):
        try:
            return text.encode("ascii")
        except (UnicodeError, ValueError):
            raise FormatError("base45: non-ASCII character", "bad_base45") from None
    return bytes(text)


def _overflow(what):
    return FormatError("base45: %s overflows" % what, "bad_base45")


def _outside():
    return FormatError("base45: character outside the alphabet", "bad_base45")


def decode_loop(text) -> bytes:
    """The reference decoder: one triple at a time."""
    raw = _ascii(text)
    n = len(raw)
    if n % 3 == 1:
        raise FormatError("base45: length %d leaves a lone character" % n, "bad_base45")
    out = bytearray()
    idx = _INDEX
    i = 0
    try:
        while i + 2 < n:
            v = idx[raw[i]] + idx[raw[i + 1]] * 45 + idx[raw[i + 2]] * 2025
            if v > 0xFFFF:
                raise _overflow("triple at %d" % i)
            out.append(v >> 8)
            out.append(v & 0xFF)
            i += 3
        if i < n:
            v = idx[raw[i]] + idx[raw[i + 1]] * 45
            if v > 0xFF:
                raise _overflow("final pair")
            out.append(v)
    except KeyError:
        raise _outside() from None
    return bytes(out)


encode = encode_loop  # CPython: protocol/base45_bulk.py's, the same text
decode = decode_loop

if sys.implementation.name != "micropython":  # pragma: no branch
    from protocol.base45_bulk import decode, encode  # noqa: E402, F401, F811
