"""Base45 (RFC 9285), strict.

Ride codes travel as base45 text so the QR code uses alphanumeric mode. Decoding is strict and
canonical: only the 45 alphabet characters, no lone trailing character, and no triple or pair
whose value overflows (so every byte string has exactly one text form, and two texts that
differ always decode to different bytes or fail).

Two decoders with identical results: a plain loop (MicroPython, and the reference) and, on
CPython, a bulk one that does the arithmetic of all triples at once with big integers (5x
faster; ride-code verification is dominated by it after the signatures). Likewise two
encoders: the loop, and on CPython one table lookup per pair of bytes (the simulator's phones
encode every code they show).
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


_PAIRS: list = []  # CPython: the text of every 16-bit value, made at the first encode


def encode_bulk(data: bytes) -> str:
    """CPython encoder: the same text as encode_loop, each pair of bytes looked up at once in a
    table of all 65,536 three-character texts (about 4 MB, so never on MicroPython)."""
    import struct

    if not _PAIRS:
        a = ALPHABET
        _PAIRS.extend(a[v % 45] + a[v // 45 % 45] + a[v // 2025] for v in range(65536))
    data = bytes(data)
    full = len(data) & ~1
    out = "".join(map(_PAIRS.__getitem__, struct.unpack(">%dH" % (full // 2), data[:full])))
    if full < len(data):
        d, c = divmod(data[full], 45)
        out += ALPHABET[c] + ALPHABET[d]
    return out


def encode(data: bytes) -> str:
    """Base45 text of `data` (RFC 9285)."""
    return _encode(data)


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


_TABLE = bytearray(b"\xff" * 256)
for _i, _c in enumerate(_ALPHABET_B):
    _TABLE[_c] = _i
_TABLE = bytes(_TABLE)


def decode_bulk(text) -> bytes:
    """CPython decoder: the same result as decode_loop, with every triple computed at once.

    The digit values of each column (first, second, third character of every triple) are
    spread into 3-byte slots of one big integer; a + 45*b + 2025*c then computes all triples
    in one go (each value < 2^24, so no slot carries into the next). A non-zero top byte in a
    slot is a value above 0xFFFF, which canonical base45 forbids.
    """
    raw = _ascii(text)
    n = len(raw)
    if n % 3 == 1:
        raise FormatError("base45: length %d leaves a lone character" % n, "bad_base45")
    vals = raw.translate(_TABLE)
    if 255 in vals:
        raise _outside()
    full = n - n % 3
    slots = bytearray(full)
    slots[2::3] = vals[0:full:3]
    a = int.from_bytes(slots, "big")
    slots[2::3] = vals[1:full:3]
    b = int.from_bytes(slots, "big")
    slots[2::3] = vals[2:full:3]
    c = int.from_bytes(slots, "big")
    w = (a + 45 * b + 2025 * c).to_bytes(full, "big")
    if any(w[0::3]):
        raise _overflow("a triple")
    out = bytearray(full // 3 * 2)
    out[0::2] = w[1::3]
    out[1::2] = w[2::3]
    if full < n:
        v = vals[full] + vals[full + 1] * 45
        if v > 0xFF:
            raise _overflow("final pair")
        out.append(v)
    return bytes(out)


def decode(text) -> bytes:
    """Decode base45 text (str or bytes). Raises FormatError(reason="bad_base45")."""
    return _decode(text)


_decode = decode_loop if sys.implementation.name == "micropython" else decode_bulk
_encode = encode_loop if sys.implementation.name == "micropython" else encode_bulk
