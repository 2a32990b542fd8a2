"""anchor.bin, the time anchor's file, byte for byte. Pure functions.

Two 20-byte slots, written alternately in place (slot `seq % 2`), so a torn write spoils at
most the slot being written; the good slot with the higher seq wins:
    u32 seq | u32 last_good | u32 flags (bit 0 untrusted, bit 1 rtc_ahead) | i32 lead_s
    | u32 crc32(first 16)
Big-endian. A 32-byte file of two 16-byte slots (no lead; written before the forward check
existed) reads as lead 0.
"""

import struct
from binascii import crc32

FLAG_UNTRUSTED = 1
FLAG_AHEAD = 2
_SLOT = ">IIIi"
SLOT_LEN = 20
FILE_LEN = 2 * SLOT_LEN
_OLD_SLOT = ">III"
_OLD_SLOT_LEN = 16


def slot(seq: int, last_good: int, flags: int, lead: int) -> bytes:
    body = struct.pack(_SLOT, seq, last_good, flags, lead)
    return body + struct.pack(">I", crc32(body) & 0xFFFFFFFF)


def slot_offset(seq: int) -> int:
    return (seq % 2) * SLOT_LEN


def whole(seq: int, s: bytes) -> bytes:
    """A new file holding slot `s` (of `seq`) where it belongs, the other slot empty."""
    return bytes(SLOT_LEN) + s if slot_offset(seq) else s + bytes(SLOT_LEN)


def parse(data):
    """-> ((seq, last_good, flags, lead) of the newest good slot, or None; current): current
    is False for the old layout or a damaged size, which is rewritten whole at the next write."""
    if len(data) == 2 * _OLD_SLOT_LEN:
        current, size, fmt = False, _OLD_SLOT_LEN, _OLD_SLOT
    else:
        current, size, fmt = len(data) == FILE_LEN, SLOT_LEN, _SLOT
    best = None
    for i in (0, 1):
        s = data[i * size : (i + 1) * size]
        if len(s) != size:
            continue
        fields = struct.unpack(fmt, s[:-4])
        if crc32(s[:-4]) & 0xFFFFFFFF != struct.unpack(">I", s[-4:])[0] or fields[0] == 0:
            continue
        if best is None or fields[0] > best[0]:
            best = fields
    if best is not None and len(best) == 3:
        best = (best[0], best[1], best[2], 0)
    return best, current
