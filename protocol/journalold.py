"""The journal's segment formats of before version 3 (docs/sync-protocol.md, "Journal on disk"):
read, trimmed and repaired, never written by a gate. Kept apart from protocol/journalfile.py so a
gate whose journal holds none never loads it (an MCU's heap holds its bytecode otherwise).

entry v2 (146 bytes): the same copy twice; a copy is A6 | record v1 (64) | k u32 | crc32 u32;
         a hole has mark A7
entry v1 (69 bytes)   A5 | record v1 (64) | crc32(record) u32
"""

import struct
from binascii import crc32

from protocol import records
from protocol.applog import Framing
from protocol.journalfile import (
    BAD,
    ENTRY_LEN,
    FOOTER_LEN,
    GOOD,
    HOLED,
    MENDED,
    parse_footer,
    sealed_shape,
)

_V1LEN = records.RECORD_LEN_V1
ENTRY = Framing(_V1LEN, mark=b"\xa5")  # version 1
COPY = Framing(_V1LEN + 4, mark=b"\xa6")
HOLE = Framing(_V1LEN + 4, mark=b"\xa7")
COPY_LEN = COPY.frame_len  # 73

entry = ENTRY.frame  # entry(raw record) -> the 69 bytes of a version 1 entry


def entry2(raw, k: int) -> bytes:
    """The 146 bytes of a version 2 entry: the record `raw`, k-th of its commit group."""
    c = COPY.frame(bytes(raw) + struct.pack(">I", k))
    return c + c


def hole(seq: int) -> bytes:
    """The 146 bytes of a version 2 hole: the slot of `seq`, whose record is lost."""
    body = bytearray(_V1LEN + 4)
    body[8:16] = struct.pack(">Q", seq)
    c = HOLE.frame(bytes(body))
    return c + c


def slot(data, off: int, fmt: int, seq: int):
    """protocol.journalfile.slot for formats 1 and 2."""
    if fmt == 1:
        raw = ENTRY.body_at(data, off)
        if raw is None or records.seq_of(raw) != seq:
            return BAD, None, 0
        return GOOD, raw, 0
    good = None
    n = 0
    for p in (off, off + COPY_LEN):
        body = COPY.body_at(data, p)
        if body is not None and records.seq_of(body) == seq:
            n += 1
            if good is None:
                good = body
    if good is None:
        body = HOLE.body_at(data, off) or HOLE.body_at(data, off + COPY_LEN)
        if body is not None and records.seq_of(body) == seq:
            return HOLED, None, 0
        return BAD, None, 0
    k = struct.unpack(">I", good[_V1LEN:])[0]
    return (GOOD if n == 2 else MENDED), good[:_V1LEN], k


_unpack_from = struct.unpack_from


def record_of(data, off: int, fmt: int, seq: int):
    """protocol.journalfile.record_of for formats 1 and 2: from the first good copy."""
    if fmt == 1:
        raw = ENTRY.body_at(data, off)
        return raw if raw is not None and records.seq_of(raw) == seq else None
    for p in (off, off + COPY_LEN):
        if data[p] == 0xA6:
            body = data[p + 1 : p + 1 + _V1LEN + 4]
            if (
                crc32(body) & 0xFFFFFFFF == _unpack_from(">I", data, p + 1 + _V1LEN + 4)[0]
                and _unpack_from(">Q", data, p + 9)[0] == seq
            ):
                return body[:_V1LEN]
    return None


def record_at(data, i: int) -> bytes:
    """The record of version 1 entry `i` in a segment's bytes (unchecked: the caller
    scanned them)."""
    p = i * ENTRY_LEN + 1
    return bytes(data[p : p + _V1LEN])


def looks_sealed(data, elen: int = ENTRY_LEN) -> bool:
    """The segment's size and last bytes say it ends with a footer (not yet checked)."""
    return sealed_shape(len(data), data[-FOOTER_LEN:], elen)


def check_sealed(data, elen: int = ENTRY_LEN):
    """-> count of a sealed segment whose footer and entries check; None if it does not."""
    if not looks_sealed(data, elen):
        return None
    body_len = len(data) - FOOTER_LEN
    parsed = parse_footer(bytes(data[body_len:]), body_len, elen)
    if parsed is None or crc32(memoryview(data)[:body_len]) & 0xFFFFFFFF != parsed[1]:
        return None
    return parsed[0]
