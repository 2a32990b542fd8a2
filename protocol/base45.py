"""Base45 (RFC 9285), strict.

Ride codes travel as base45 text so the QR code uses alphanumeric mode. Decoding is strict and
canonical: only the 45 alphabet characters, no lone trailing character, and no triple or pair
whose value overflows (so every byte string has exactly one text form).
"""

from protocol.errors import FormatError

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_INDEX = {}
for _i, _c in enumerate(ALPHABET):
    _INDEX[ord(_c)] = _i


def encode(data: bytes) -> str:
    out = []
    n = len(data)
    i = 0
    while i + 1 < n:
        v = (data[i] << 8) | data[i + 1]
        e, v = divmod(v, 45 * 45)
        d, c = divmod(v, 45)
        out.append(ALPHABET[c] + ALPHABET[d] + ALPHABET[e])
        i += 2
    if i < n:
        d, c = divmod(data[i], 45)
        out.append(ALPHABET[c] + ALPHABET[d])
    return "".join(out)


def decode(text) -> bytes:
    """Decode base45 text (str or bytes). Raises FormatError(reason="bad_base45")."""
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except (UnicodeError, ValueError):
            raise FormatError("base45: non-ASCII character", "bad_base45") from None
    else:
        raw = bytes(text)
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
                raise FormatError("base45: triple at %d overflows 16 bits" % i, "bad_base45")
            out.append(v >> 8)
            out.append(v & 0xFF)
            i += 3
        if i < n:
            v = idx[raw[i]] + idx[raw[i + 1]] * 45
            if v > 0xFF:
                raise FormatError("base45: final pair overflows a byte", "bad_base45")
            out.append(v)
    except KeyError:
        raise FormatError("base45: character outside the alphabet", "bad_base45") from None
    return bytes(out)
