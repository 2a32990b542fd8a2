"""Base45 on CPython: the same results as protocol/base45.py's loops, much faster.

protocol.base45 takes `encode` and `decode` from here when it runs on CPython; an MCU gate never
loads this module (the encoder's table alone is about 4 MB, and its names would take the MCU's
qstr pools: docs/mcu.md). The tests compare both with the loops (tests/test_base45_property.py).
"""

import struct

from protocol.errors import FormatError

_PAIRS: list = []  # the text of every 16-bit value, made at the first encode
_TABLE = bytearray(b"\xff" * 256)  # byte -> digit value (0xff: outside the alphabet)


def encode(data: bytes) -> str:
    """Base45 text of `data`: each pair of bytes looked up at once in a table of all 65,536
    three-character texts."""
    from protocol.base45 import ALPHABET  # (protocol.base45 imports this module at its end)

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


def decode(text) -> bytes:
    """Decode base45 text (str or bytes) with every triple computed at once. Raises
    FormatError(reason="bad_base45").

    The digit values of each column (first, second, third character of every triple) are
    spread into 3-byte slots of one big integer; a + 45*b + 2025*c then computes all triples
    in one go (each value < 2^24, so no slot carries into the next). A non-zero top byte in a
    slot is a value above 0xFFFF, which canonical base45 forbids.
    """
    from protocol.base45 import ALPHABET, _ascii, _outside, _overflow

    if _TABLE[48] == 0xFF:
        for i, c in enumerate(ALPHABET.encode()):
            _TABLE[c] = i
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
