"""The journal's files, byte for byte (docs/sync-protocol.md, "Journal on disk"). Pure functions.

seg-<first seq, 16 hex digits>.jn2   version 2 segments: entries, then (once full) a footer
seg-<first seq, 16 hex digits>.jnl   version 1 segments (journals written before version 2;
                                     read, trimmed and repaired, never appended to)
journal.meta, journal.meta.b         the acknowledged position, two copies

entry v2 (146 bytes): the same copy twice; a copy is (applog framing)
         A6 | record (64, protocol.records) | k u32 | crc32(record | k) u32
         k = the entry's place in its commit group (0 for the first of a group written with
         one write and one fsync); a hole (a slot a repair found lost) has mark A7 and an
         all-zero record but for its seq
entry v1 (69 bytes)   A5 | record (64) | crc32(record) u32
footer   5A | count u32 | crc32(all entries) u32 | hash of the last record (16)
         | crc32(footer so far) u32
meta     acknowledged seq u64 | hash of that record (16) | crc32(first 24) u32
"""

import struct
from binascii import crc32

from protocol import records
from protocol.applog import Framing
from protocol.errors import FormatError

ENTRY = Framing(records.RECORD_LEN, mark=b"\xa5")  # version 1
ENTRY_LEN = ENTRY.frame_len  # 69
COPY = Framing(records.RECORD_LEN + 4, mark=b"\xa6")
HOLE = Framing(records.RECORD_LEN + 4, mark=b"\xa7")
COPY_LEN = COPY.frame_len  # 73
ENTRY2_LEN = 2 * COPY_LEN  # 146
FOOTER_MARK = 0x5A
FOOTER_LEN = 1 + 4 + 4 + records.HASH_LEN + 4  # 29
META = "journal.meta"
META_B = "journal.meta.b"
META_LEN = 8 + records.HASH_LEN + 4  # 28
V1 = ".jnl"
V2 = ".jn2"
_SEG_NAME_LEN = 24
# what a slot of a segment holds (slot(), below)
GOOD = 0  # both copies check
MENDED = 1  # one copy checks: the record is whole, the other copy is damaged
HOLED = 2  # a hole a repair wrote: this seq is known lost
BAD = 3  # no copy checks (a torn write or damage)


entry = ENTRY.frame  # entry(raw record) -> the 69 bytes of a version 1 entry


def entry2(raw, k: int) -> bytes:
    """The 146 bytes of a version 2 entry: the record `raw`, k-th of its commit group."""
    c = COPY.frame(bytes(raw) + struct.pack(">I", k))
    return c + c


def hole(seq: int) -> bytes:
    """The 146 bytes of a hole: the slot of `seq`, whose record is lost, marked as known."""
    body = bytearray(records.RECORD_LEN + 4)
    body[8:16] = struct.pack(">Q", seq)
    c = HOLE.frame(bytes(body))
    return c + c


def entry_len(name: str) -> int:
    return ENTRY2_LEN if name.endswith(V2) else ENTRY_LEN


def slot(data, off: int, v2: bool, seq: int):
    """-> (state, record or None, k) of the entry at `off` of `data`, expected to hold `seq`.
    A copy that checks but holds another seq (a misdirected write) does not count."""
    if not v2:
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
    k = struct.unpack(">I", good[records.RECORD_LEN :])[0]
    return (GOOD if n == 2 else MENDED), good[: records.RECORD_LEN], k


_RLEN = records.RECORD_LEN
_unpack_from = struct.unpack_from


def record_of(data, off: int, v2: bool, seq: int):
    """The record of the entry at `off` of `data` (bytes), from its first good copy, or None:
    the read path (`slot` checks both copies, to report a damaged one)."""
    if not v2:
        raw = ENTRY.body_at(data, off)
        return raw if raw is not None and records.seq_of(raw) == seq else None
    for p in (off, off + COPY_LEN):
        if data[p] == 0xA6:
            body = data[p + 1 : p + 1 + _RLEN + 4]
            if (
                crc32(body) & 0xFFFFFFFF == _unpack_from(">I", data, p + 1 + _RLEN + 4)[0]
                and _unpack_from(">Q", data, p + 9)[0] == seq
            ):
                return body[:_RLEN]
    return None


def record_at(data, i: int) -> bytes:
    """The record of version 1 entry `i` in a segment's bytes (unchecked: the caller
    scanned them)."""
    p = i * ENTRY_LEN + 1
    return bytes(data[p : p + records.RECORD_LEN])


def segment_name(first_seq: int, ext: str = V2) -> str:
    return "seg-%016x%s" % (first_seq, ext)


def segment_first(name: str):
    """The first seq of a segment file's name, or None if `name` is not a segment's."""
    if len(name) != _SEG_NAME_LEN or not (
        name.startswith("seg-") and (name.endswith(V1) or name.endswith(V2))
    ):
        return None
    try:
        return int(name[4:20], 16)
    except ValueError:
        return None


def footer(count: int, crc: int, last_hash: bytes) -> bytes:
    f = struct.pack(">BII", FOOTER_MARK, count, crc & 0xFFFFFFFF) + last_hash
    return f + struct.pack(">I", crc32(f) & 0xFFFFFFFF)


def sealed_shape(size: int, tail, elen: int = ENTRY_LEN) -> bool:
    """A segment of `size` bytes whose last FOOTER_LEN bytes are `tail` ends with a footer
    (its shape only; `parse_footer` and the entries' CRC check it)."""
    return (
        size >= FOOTER_LEN
        and (size - FOOTER_LEN) % elen == 0
        and len(tail) == FOOTER_LEN
        and tail[0] == FOOTER_MARK
    )


def looks_sealed(data, elen: int = ENTRY_LEN) -> bool:
    """The segment's size and last bytes say it ends with a footer (not yet checked)."""
    return sealed_shape(len(data), data[-FOOTER_LEN:], elen)


def parse_footer(tail, body_len: int, elen: int = ENTRY_LEN):
    """-> (count, crc32 of all entries) of a footer `tail` that checks and counts exactly the
    `body_len` bytes of entries before it; None if it does not."""
    if len(tail) != FOOTER_LEN or tail[0] != FOOTER_MARK:
        return None
    _mark, count, crc = struct.unpack(">BII", tail[:9])
    if (
        struct.unpack(">I", tail[-4:])[0] != crc32(tail[:-4]) & 0xFFFFFFFF
        or count * elen != body_len
    ):
        return None
    return count, crc


def check_sealed(data, elen: int = ENTRY_LEN):
    """-> count of a sealed segment whose footer and entries check; None if it does not."""
    if not looks_sealed(data, elen):
        return None
    body_len = len(data) - FOOTER_LEN
    parsed = parse_footer(bytes(data[body_len:]), body_len, elen)
    if parsed is None or crc32(memoryview(data)[:body_len]) & 0xFFFFFFFF != parsed[1]:
        return None
    return parsed[0]


def meta(acked_seq: int, acked_hash: bytes) -> bytes:
    m = struct.pack(">Q", acked_seq) + acked_hash
    return m + struct.pack(">I", crc32(m) & 0xFFFFFFFF)


def parse_meta(data):
    """-> (acked seq, hash of that record); raises FormatError if damaged."""
    if len(data) != META_LEN or struct.unpack(">I", data[24:])[0] != crc32(data[:24]) & 0xFFFFFFFF:
        raise FormatError("journal.meta is damaged", "journal_error")
    return struct.unpack(">Q", data[:8])[0], bytes(data[8:24])
